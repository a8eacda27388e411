"""Load FER2013 from the Kaggle folder layout or from the original CSV.

Both loaders return a :class:`FerSplit` of raw 48x48 grayscale ``uint8`` images and
integer labels in :data:`emotion_contract.labels.EMOTIONS` order, whatever order
the class folders are listed in.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_contract.labels import EMOTIONS

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
# The CSV's "Usage" column names the splits differently from the folder layout.
CSV_USAGE = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}
FER_SIZE = 48


class DataError(ValueError):
    """A data set that cannot be read: names the file or folder at fault."""


@dataclass(frozen=True)
class FerSplit:
    """One split of FER2013: images ``(n, 48, 48) uint8`` and labels ``(n,) int64``."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (n, h, w) uint8, got {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError("labels must be (n,), one per image")

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(EMOTIONS))

    def digest(self) -> str:
        """A SHA-256 of images and labels, recorded in the model's metadata."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype(np.int64).tobytes())
        return h.hexdigest()

    def subset(self, index: np.ndarray) -> FerSplit:
        return FerSplit(self.images[index], self.labels[index])


def load_split(root: str | Path, split: str = "train") -> FerSplit:
    """Load one split from a folder layout or a CSV file.

    Args:
        root: the folder holding ``train/`` and ``test/`` (Kaggle layout), or the
            ``fer2013.csv`` file (columns ``emotion,pixels,Usage``).
        split: ``train`` or ``test`` (``private`` too, for the CSV).

    Raises:
        DataError: the split is missing or empty, a class folder has an unknown
            name, or an image cannot be decoded.
    """
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return _load_csv(root, split)
    if not root.is_dir():
        raise DataError(f"no FER2013 data at {root}: expected a folder or a .csv file")
    return _load_folders(root / split)


def _load_folders(split_dir: Path) -> FerSplit:
    import cv2

    if not split_dir.is_dir():
        raise DataError(f"split folder {split_dir} does not exist")
    images, labels = [], []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if class_dir.name.lower() not in EMOTIONS:
            raise DataError(
                f"unknown class folder {class_dir}: "
                f"expected one of {', '.join(EMOTIONS)}"
            )
        label = EMOTIONS.index(class_dir.name.lower())
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            images.append(_read_gray(path, cv2))
            labels.append(label)
    if not images:
        raise DataError(f"split folder {split_dir} holds no images")
    logger.info("loaded %d images from %s", len(images), split_dir)
    return FerSplit(np.stack(images), np.asarray(labels, dtype=np.int64))


def _read_gray(path: Path, cv2) -> np.ndarray:
    # np.fromfile + imdecode copes with non-ASCII paths, which cv2.imread does not.
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"cannot decode image {path}")
    if image.shape != (FER_SIZE, FER_SIZE):
        image = cv2.resize(image, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA)
    return image


def _load_csv(path: Path, split: str) -> FerSplit:
    if split not in CSV_USAGE:
        raise DataError(f"unknown split {split!r}: expected one of {sorted(CSV_USAGE)}")
    usage = CSV_USAGE[split]
    images, labels = [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if row["Usage"] != usage:
                continue
            images.append(_parse_pixels(row["pixels"], path, line))
            labels.append(_parse_label(row["emotion"], path, line))
    if not images:
        raise DataError(f"{path} holds no rows with Usage={usage}")
    return FerSplit(np.stack(images), np.asarray(labels, dtype=np.int64))


def _parse_pixels(text: str, path: Path, line: int) -> np.ndarray:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DataError(f"{path}:{line}: pixels are not integers") from None
    if values.size != FER_SIZE * FER_SIZE or values.min() < 0 or values.max() > 255:
        raise DataError(
            f"{path}:{line}: expected {FER_SIZE * FER_SIZE} pixels in 0..255"
        )
    return values.astype(np.uint8).reshape(FER_SIZE, FER_SIZE)


def _parse_label(text: str, path: Path, line: int) -> int:
    if not text.strip().isdigit() or int(text) >= len(EMOTIONS):
        raise DataError(f"{path}:{line}: emotion must be 0..{len(EMOTIONS) - 1}")
    return int(text)


# The validation split's seed, fixed apart from a run's --seed: a warm restart
# (--init) with another seed must not validate on images its model trained on.
SPLIT_SEED = 1337


def stratified_split(
    split: FerSplit, *, val_fraction: float = 0.2, seed: int = SPLIT_SEED
) -> tuple[FerSplit, FerSplit]:
    """Split off a validation set with each class in proportion, reproducibly.

    With FER2013's train split and the defaults this gives the seed report's
    22,968 / 5,741 images (rounding per class).
    """
    rng = np.random.default_rng(seed)
    val_index = []
    for label in range(len(EMOTIONS)):
        members = np.flatnonzero(split.labels == label)
        rng.shuffle(members)
        val_index.append(members[: round(len(members) * val_fraction)])
    val = np.sort(np.concatenate(val_index))
    train = np.setdiff1d(np.arange(len(split)), val)
    return split.subset(train), split.subset(val)


def load_validation(root: str | Path, cache_dir: Path | None = None) -> FerSplit:
    """The validation split: the stratified 20% of train that training holds out."""
    return stratified_split(load_cached(root, "train", cache_dir))[1]


def load_named_split(
    root: str | Path, split: str, cache_dir: Path | None = None
) -> FerSplit:
    """A split by the name commands take: ``val`` is the validation split training
    holds out, any other name a stored split (``train``, ``test``)."""
    if split == "val":
        return load_validation(root, cache_dir)
    return load_cached(root, split, cache_dir)


def load_cached(root: str | Path, split: str, cache_dir: Path | None) -> FerSplit:
    """Like :func:`load_split`, but keeps a compressed copy in ``cache_dir``.

    Decoding 28,709 JPEGs takes about half a minute; the cache makes reruns instant.
    The cache key includes the root's path and modification time.
    """
    if cache_dir is None:
        return load_split(root, split)
    root = Path(root).resolve()
    key = hashlib.sha256(
        f"{root}|{root.stat().st_mtime_ns}|{split}".encode()
    ).hexdigest()
    cached = Path(cache_dir) / f"fer-{split}-{key[:16]}.npz"
    if cached.exists():
        with np.load(cached) as f:
            return FerSplit(f["images"], f["labels"])
    data = load_split(root, split)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, images=data.images, labels=data.labels)
    tmp.replace(cached)
    return data
