"""The emotion model's own metadata, stored inside its ``.keras`` file.

A ``.keras`` file is a zip archive; the training package adds one member,
``emotion_model.json``, that says how to feed the model and what it returns. The
analyzer reads it (without loading TensorFlow) instead of hard-coding class order,
input size or preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

MEMBER = "emotion_model.json"
FORMAT = "emotion-model/1"


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or lacks the metadata."""


@dataclass(frozen=True)
class ModelInfo:
    """How to feed an emotion model and how to read its output.

    Attributes:
        class_names: the output units' labels, in output order.
        input_size: ``(height, width)`` the model takes.
        color_mode: ``"grayscale"`` (one channel) or ``"rgb"``.
        input_scale: the value range the model expects, e.g. ``(0, 255)`` for raw
            pixels; normalisation beyond that happens inside the model.
        crop_margin: how much to widen a detector's face box on each side, as a
            fraction of its size, so the crop frames a face as the training data did.
        name: a human-readable model name.
        temperature: divides the output's log-probabilities
            (:func:`emotion_contract.calibration.temper`); 1 until calibrated.
        confidence_map: ``(x, y)`` knots of the monotone map applied to the top
            probability after the temperature
            (:func:`emotion_contract.calibration.map_confidence`); ``None``: none.
        extra: training facts (recipe, data hash, metrics); informational.
    """

    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    color_mode: str = "grayscale"
    input_scale: tuple[float, float] = (0.0, 255.0)
    crop_margin: float = 0.0
    name: str = "emotion-model"
    temperature: float = 1.0
    confidence_map: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.color_mode not in ("grayscale", "rgb"):
            raise ModelFileError(f"unknown color_mode {self.color_mode!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ModelFileError(f"bad input_size {self.input_size!r}")
        if not 0.01 <= self.temperature <= 100:  # NaN fails too
            raise ModelFileError(f"bad temperature {self.temperature!r}")
        if self.confidence_map is not None:
            import numpy as np

            x, y = (np.asarray(k, dtype=float) for k in self.confidence_map)
            if not (
                len(x) == len(y) >= 2
                and np.all(np.diff(x) > 0)
                and np.all(np.diff(y) >= 0)
                and 0 <= x[0]
                and x[-1] <= 1
                and 0 < y[0]
                and y[-1] < 1
            ):
                raise ModelFileError(
                    "bad confidence_map: x ascending in [0, 1], y not descending "
                    "in (0, 1), at least two knots"
                )

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise ModelFileError(f"metadata is not in the {FORMAT} format")
        data["class_names"] = tuple(data["class_names"])
        data["input_size"] = tuple(data["input_size"])
        data["input_scale"] = tuple(data["input_scale"])
        if data.get("confidence_map") is not None:
            data["confidence_map"] = tuple(tuple(k) for k in data["confidence_map"])
        return cls(**data)


def write_info(path: str | Path, info: ModelInfo) -> None:
    """Add (or replace) the metadata member of a saved ``.keras`` file."""
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != MEMBER}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(MEMBER, info.to_json())
    tmp.replace(path)


def read_info(path: str | Path) -> ModelInfo:
    """Read a model's metadata without loading the model.

    Raises:
        ModelFileError: the file is missing, not a ``.keras`` archive, or was not
            written by the training package.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read(MEMBER).decode()
    except KeyError:
        raise ModelFileError(
            f"{path} has no {MEMBER}: it was not saved by `python -m training`"
        ) from None
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path} is not a .keras model file") from None
    except (OSError, UnicodeDecodeError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from None
    try:
        return ModelInfo.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, missing keys
        raise ModelFileError(
            f"{path} has damaged metadata ({MEMBER}: {type(exc).__name__}: {exc}); "
            "use a model saved by `python -m training`"
        ) from None


def file_sha256(path: str | Path) -> str:
    """The model file's SHA-256, stored with every analysis for provenance."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
