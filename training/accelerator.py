"""Train on a borrowed accelerator for a fixed number of minutes, then finish here.

An accelerator machine may be lent for a few minutes, with at most 64 MiB of files
carried to it and no TensorFlow on it. Three steps, each a subcommand of
``python -m training.accelerator``:

- ``pack`` (here): the training part of the stratified split as lossless WebP
  images (FER2013's JPEG noise leaves little to compress: about 1.8 kB a face), a
  sample of the validation part to draw the learning curve, and the starting model's
  weights in float16.
- ``train`` (there, ``KERAS_BACKEND=jax``): one cosine cycle of a recipe whose length
  is set by a time budget instead of an epoch count: after each epoch the number of
  epochs that still fit is recomputed from the epochs' measured times, and the
  learning rate of the next epoch follows the cosine over that many. Weights come
  back as float32 ``.npz`` parts of at most 15 MiB, written again every few minutes
  so a run cut short still returns its last state.
- ``finish`` (here): loads those weights into the recipe's model and saves it with
  its card, evaluated on the full validation split and on test, like ``train`` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

PACK_FORMAT = 1
PART_BYTES = 15 * 2**20  # each file brought back must stay under 16 MiB
WARMUP_FACTOR = 0.3  # the first epoch's learning rate, as a share of the peak
FINAL_FACTOR = 0.01  # the cosine ends at this share of the peak


# ---------------------------------------------------------------- encoding


def encode_faces(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lossless WebP of each 48x48 face: one byte buffer and ``n + 1`` offsets."""
    import cv2

    chunks = []
    for image in images:
        ok, buf = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])
        if not ok:
            raise RuntimeError("OpenCV could not encode WebP")
        chunks.append(buf.ravel())
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    return np.concatenate(chunks), offsets


def decode_faces(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The inverse of :func:`encode_faces`: ``(n, 48, 48) uint8``."""
    import cv2

    faces = [
        cv2.imdecode(blob[a:b], cv2.IMREAD_GRAYSCALE)
        for a, b in zip(offsets[:-1], offsets[1:], strict=True)
    ]
    if any(f is None for f in faces):
        raise ValueError("a packed face could not be decoded")
    return np.stack(faces)


def save_weights_parts(weights: list[np.ndarray], out: Path, stem: str) -> list[str]:
    """Write ``weights`` as ``stem-<i>.npz`` files of at most ``PART_BYTES`` each.

    Each part is written to a temporary name and renamed, so a reader (or a run cut
    short) never sees half a file. Returns the part names in order.
    """
    out.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for index, w in enumerate(weights):
        if parts[-1] and size + w.nbytes > PART_BYTES:
            parts.append({})
            size = 0
        parts[-1][f"w{index:04d}"] = np.asarray(w)
        size += w.nbytes
    names = []
    for i, part in enumerate(parts):
        name = f"{stem}-{i}.npz"
        tmp = out / f".{name}.tmp.npz"
        np.savez(tmp, **part)
        tmp.replace(out / name)
        names.append(name)
    return names


def load_weights_parts(folder: Path, names: list[str]) -> list[np.ndarray]:
    """The weights written by :func:`save_weights_parts`, in model order."""
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        with np.load(folder / name) as f:
            arrays.update({k: f[k] for k in f.files})
    return [arrays[k] for k in sorted(arrays)]


# ---------------------------------------------------------------- pack (here)


def pack(
    data: Path,
    out: Path,
    *,
    recipe: str,
    init: Path | None,
    val_sample: int = 1500,
    seed: int = 1337,
    cache_dir: Path | None = None,
    limit: int | None = None,
) -> dict:
    """Write the files an accelerator run needs into ``out``; returns ``pack.json``."""
    from .data import load_cached, stratified_split
    from .recipes import RECIPES

    if recipe not in RECIPES:
        raise SystemExit(f"unknown recipe {recipe!r}: one of {', '.join(RECIPES)}")
    last = RECIPES[recipe].phases[-1]
    if last.optimizer not in ("adam", "adamw") or last.schedule == "plateau":
        # train() runs its own timed cosine cycle with Adam(W) only.
        raise SystemExit(
            f"recipe {recipe!r}: the accelerator run trains a cosine cycle with "
            "Adam(W) only"
        )
    full = load_cached(data, "train", cache_dir)
    train, val = stratified_split(full)
    rng = np.random.default_rng(seed)
    if limit:
        train = train.subset(np.sort(rng.permutation(len(train))[:limit]))
    val = val.subset(np.sort(rng.permutation(len(val))[: min(val_sample, len(val))]))
    out.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("val", val)):
        blob, offsets = encode_faces(split.images)
        if not np.array_equal(decode_faces(blob, offsets), split.images):
            raise RuntimeError(
                "WebP round trip changed pixels: this OpenCV lacks lossless WebP"
            )
        np.savez(out / f"{name}.npz", blob=blob, offsets=offsets, labels=split.labels)
    info = {
        "format": PACK_FORMAT,
        "recipe": recipe,
        "seed": seed,
        "data": str(data),
        "data_sha256": full.digest(),
        "train_images": len(train),
        "val_sample": len(val),
        "init": None,
    }
    if init is not None:
        from emotion_contract.layers import load_keras_model
        from emotion_contract.modelfile import file_sha256

        weights = load_keras_model(init).get_weights()
        np.savez(
            out / "init.npz",
            **{f"w{i:04d}": w.astype(np.float16) for i, w in enumerate(weights)},
        )
        info["init"] = {
            "path": str(init),
            "sha256": file_sha256(init),
            "arrays": len(weights),
        }
    (out / "pack.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


# ---------------------------------------------------------------- train (there)


def _load_pack_split(path: Path):
    from .data import FerSplit

    with np.load(path) as f:
        return FerSplit(
            decode_faces(f["blob"], f["offsets"]), f["labels"].astype(np.int64)
        )


def cosine_lr(epoch: int, planned: int, peak: float) -> float:
    """Epoch ``epoch``'s learning rate in a cycle of ``planned`` epochs.

    Epoch 0 warms up at ``WARMUP_FACTOR`` of the peak; epochs 1 .. planned-1 follow a
    cosine from the peak down to ``FINAL_FACTOR`` of it.
    """
    if epoch == 0:
        return peak * WARMUP_FACTOR
    span = max(planned - 2, 1)
    progress = min((epoch - 1) / span, 1.0)
    return peak * (
        FINAL_FACTOR + (1 - FINAL_FACTOR) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def planned_epochs(
    done: int, durations: list[float], remaining_s: float, cap: int
) -> int:
    """How many epochs the cycle holds: those done plus those the time left fits.

    The first epoch is left out of the estimate while later ones exist (it includes
    compilation).
    """
    steady = durations[1:] or durations
    per_epoch = float(np.median(steady)) if steady else float("inf")
    return min(cap, done + max(int(remaining_s // per_epoch), 0))


def train_for(
    pack_dir: Path,
    out: Path,
    *,
    budget_s: float,
    label_smoothing: float | None = None,
    max_epochs: int = 400,
    save_every_s: float = 120.0,
) -> dict:
    """Train one time-budgeted cosine cycle; write weights parts and ``run.json``."""
    import keras

    from .model import build_model
    from .recipes import RECIPES
    from .train import class_weights

    started = time.time()
    info = json.loads((pack_dir / "pack.json").read_text())
    recipe = RECIPES[info["recipe"]]
    if label_smoothing is not None:
        recipe = replace(recipe, label_smoothing=label_smoothing)
    phase = recipe.phases[-1]
    keras.utils.set_random_seed(info["seed"])
    train = _load_pack_split(pack_dir / "train.npz")
    val = _load_pack_split(pack_dir / "val.npz")
    eye = np.eye(7, dtype="float32")
    x, y = train.images[..., None].astype("float32"), eye[train.labels]
    w = class_weights(train.labels, recipe.class_weight_power)[train.labels]
    xv, yv = val.images[..., None].astype("float32"), eye[val.labels]

    model = build_model(recipe)
    if info.get("init"):
        with np.load(pack_dir / "init.npz") as f:
            model.set_weights([f[k].astype("float32") for k in sorted(f.files)])
    if phase.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            phase.learning_rate, weight_decay=phase.weight_decay
        )
    else:
        optimizer = keras.optimizers.Adam(phase.learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=recipe.label_smoothing
        ),
        metrics=["accuracy"],
    )
    deadline = started + budget_s
    record = {
        "recipe": recipe.to_dict(),
        "pack": info,
        "budget_s": budget_s,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "device": _device_name(),
        "host": f"{platform.machine()}, {os.cpu_count()} CPU threads",
        "setup_s": None,
        "epochs": [],
        "weights": [],
        "finished": False,
    }

    def save(final: bool) -> None:
        record["weights"] = save_weights_parts(model.get_weights(), out, "weights")
        record["finished"] = final
        record["elapsed_s"] = round(time.time() - started, 1)
        tmp = out / ".run.json.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(out / "run.json")

    class Budget(keras.callbacks.Callback):
        """Sets each epoch's learning rate and ends the cycle when time runs out."""

        def __init__(self) -> None:
            super().__init__()
            self.durations: list[float] = []
            self.planned = max_epochs
            self.last_save = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.time()
            if record["setup_s"] is None:
                record["setup_s"] = round(self.began - started, 1)
            self.model.optimizer.learning_rate = cosine_lr(
                epoch, self.planned, phase.learning_rate
            )

        def on_epoch_end(self, epoch, logs=None):
            self.durations.append(time.time() - self.began)
            self.planned = planned_epochs(
                epoch + 1, self.durations, deadline - time.time(), max_epochs
            )
            row = {k: round(float(v), 5) for k, v in (logs or {}).items()}
            row.update(
                epoch=epoch,
                learning_rate=cosine_lr(epoch, self.planned, phase.learning_rate),
                epoch_time_s=round(self.durations[-1], 2),
                planned_epochs=self.planned,
            )
            record["epochs"].append(row)
            logger.info("epoch %s", json.dumps(row))
            if epoch + 1 >= self.planned:
                self.model.stop_training = True
            elif time.time() - self.last_save > save_every_s:
                save(final=False)
                self.last_save = time.time()

        def on_train_batch_end(self, batch, logs=None):
            if batch in (0, 50) and not record["epochs"]:
                # The first step includes compilation; 1..50 give the steady rate.
                record[f"step_{batch}_at_s"] = round(time.time() - self.began, 2)
                logger.info("batch %d after %.1f s", batch, time.time() - self.began)
            if time.time() > deadline + 30:  # an epoch ran far longer than measured
                self.model.stop_training = True

    from .batches import FixedBatches

    # Every batch the same shape, so XLA compiles one training step and one
    # evaluation step: a ragged last batch costs another compilation on a GPU.
    batch = recipe.batch_size
    keep = len(xv) // batch * batch or len(xv)
    model.fit(
        FixedBatches(x, y, w, batch, seed=info["seed"], mixup_alpha=recipe.mixup),
        validation_data=(xv[:keep], yv[:keep]),
        validation_batch_size=batch,
        epochs=max_epochs,
        verbose=0,
        callbacks=[Budget()],
    )
    save(final=True)
    return record


def _device_name() -> str:
    try:
        import jax

        return ", ".join(sorted({d.device_kind for d in jax.devices()}))
    except Exception:  # other backends: the host is the device
        return "cpu"


# ---------------------------------------------------------------- finish (here)


def finish(run_dir: Path, data: Path, out: Path, cache_dir: Path | None = None) -> Path:
    """Save the accelerator run's weights as ``out/model.keras`` with its card."""
    import csv

    from . import card
    from .data import load_validation
    from .model import build_model
    from .recipes import Recipe
    from .train import TrainConfig

    record = json.loads((run_dir / "run.json").read_text())
    recipe = _recipe_from_dict(record["recipe"], Recipe)
    recipe = recipe.with_epochs(len(record["epochs"]))
    model = build_model(recipe)
    model.set_weights(load_weights_parts(run_dir, record["weights"]))
    out.mkdir(parents=True, exist_ok=True)
    rows = record["epochs"]
    with (out / "training_log.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    info = record["pack"]
    config = TrainConfig(
        data=data,
        out=out,
        recipe=recipe,
        cache_dir=cache_dir,
        seed=info["seed"],
        init=Path(info["init"]["path"]) if info.get("init") else None,
    )
    facts = {
        "wall_time_s": record.get("elapsed_s"),
        "hardware": f"{record['device']} ({record['host']}), keras {record['keras']} "
        f"on {record['backend']}",
        "data_sha256": info["data_sha256"],
        "train_images": info["train_images"],
        "val_images": len(load_validation(data, cache_dir)),
        "seed": info["seed"],
        "init": info["init"]["path"] if info.get("init") else None,
        "accelerator": {
            "budget_s": record["budget_s"],
            "setup_s": record["setup_s"],
            "finished": record["finished"],
            "val_sample": info["val_sample"],
        },
    }
    path = out / "model.keras"
    card.save_with_card(model, path, config, facts)
    return path


def _recipe_from_dict(d: dict, recipe_cls):
    from .recipes import Phase

    d = dict(d)
    d["phases"] = tuple(Phase(**p) for p in d["phases"])
    d["notes"] = tuple(d.get("notes", ()))
    return recipe_cls(**d)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.accelerator", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack data and starting weights (here)")
    p.add_argument("--data", type=Path, required=True, help="FER2013 root or CSV")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--recipe", default="cpu-64-erase")
    p.add_argument("--init", type=Path, help="model to start from")
    p.add_argument("--val-sample", type=int, default=1500)
    p.add_argument("--cache", type=Path)
    p.add_argument("--limit", type=int, help="pack the first N training faces only")
    t = sub.add_parser("train", help="train for a time budget (on the accelerator)")
    t.add_argument("--pack", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--budget-s", type=float, required=True, help="seconds from start")
    t.add_argument("--label-smoothing", type=float, help="override the recipe's")
    t.add_argument("--max-epochs", type=int, default=400)
    f = sub.add_parser("finish", help="save the returned weights with a card (here)")
    f.add_argument("--run", type=Path, required=True, help="folder with run.json")
    f.add_argument("--data", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--cache", type=Path)
    args = parser.parse_args(argv)
    if args.command == "train":
        # Keras reads its backend once, at import: the accelerator has JAX only.
        os.environ.setdefault("KERAS_BACKEND", "jax")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "pack":
        info = pack(
            args.data,
            args.out,
            recipe=args.recipe,
            init=args.init,
            val_sample=args.val_sample,
            cache_dir=args.cache,
            limit=args.limit,
        )
        size = sum(p.stat().st_size for p in args.out.iterdir())
        print(json.dumps({**info, "bytes": size}))
    elif args.command == "train":
        record = train_for(
            args.pack,
            args.out,
            budget_s=args.budget_s,
            label_smoothing=args.label_smoothing,
            max_epochs=args.max_epochs,
        )
        print(json.dumps({k: record[k] for k in ("device", "setup_s", "elapsed_s")}))
    else:
        path = finish(args.run, args.data, args.out, args.cache)
        print(f"saved {path} (card: {path.parent / 'model_card.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
