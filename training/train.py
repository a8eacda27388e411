"""Train the emotion model: phases of ``fit``, checkpoints, resume, and the final save.

Checkpoints go to a folder outside git (``--checkpoints``, default ``OUT/checkpoints``):
``keras.callbacks.BackupAndRestore`` resumes an interrupted phase at its last finished
epoch (``val_history.json`` restores its best epoch and its patience counters), and
each finished phase is saved so a restart skips it.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_contract.labels import EMOTIONS

from .batches import FixedBatches
from .data import FerSplit, load_cached, stratified_split
from .model import build_model, set_trainable, stability_model
from .recipes import Phase, Recipe
from .resume import resume, val_history

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Where the data is, where results go, and what to start from."""

    data: Path
    out: Path
    recipe: Recipe
    checkpoints: Path | None = None
    init: Path | None = None
    cache_dir: Path | None = None
    seed: int = 1337
    val_fraction: float = 0.2
    limit: int | None = None  # train on the first N images only (smoke runs)
    snapshots: bool = False  # keep every epoch's weights (for ``training average``)
    # XLA for the training step: 84 against 47 images/s at 64 px on 2 cores
    # (python -m benchmarks.train_throughput; docs/model.md).
    xla: bool = True
    # Distillation: the targets mix the labels with these models' mean output.
    teachers: tuple[Path, ...] = ()
    distill_weight: float = 0.5

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoints or self.out / "checkpoints"


def class_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-class weights ``(n_max / n_c) ** power``, scaled to average 1 per sample."""
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    weights = np.where(counts > 0, (counts.max() / np.maximum(counts, 1)) ** power, 0.0)
    return weights / (weights[labels].mean())


def _inputs(split: FerSplit) -> np.ndarray:
    return split.images[..., None].astype("float32")


def _targets(split: FerSplit) -> np.ndarray:
    return np.eye(len(EMOTIONS), dtype="float32")[split.labels]


def teacher_probs(
    teachers: tuple[Path, ...], split: FerSplit, cache: Path
) -> np.ndarray:
    """The teachers' mean raw probabilities for ``split``'s faces (unaugmented),
    kept in ``cache`` (keyed by the teachers' and the faces' SHA-256) so that a
    resumed run does not predict again."""
    from emotion_contract.modelfile import file_sha256

    from .evaluate import predict_file

    key = np.array([file_sha256(t) for t in teachers] + [split.digest()])
    if cache.exists():
        with np.load(cache) as stored:
            if np.array_equal(stored["key"], key):
                return stored["probs"]
    probs = np.zeros((len(split), len(EMOTIONS)), dtype=np.float64)
    for path in teachers:
        probs += predict_file(path, split.images)
        logger.info("teacher %s predicted", path)
    probs = (probs / len(teachers)).astype("float32")
    np.savez(cache, key=key, probs=probs)
    return probs


def distill_targets(
    targets: np.ndarray, teacher: np.ndarray, weight: float
) -> np.ndarray:
    """One-hot ``targets`` mixed with the teachers' probabilities, ``weight`` on
    the teachers: fixed soft targets (Hinton et al. 2015 with temperature 1)."""
    return ((1.0 - weight) * targets + weight * teacher).astype("float32")


def _optimizer(phase: Phase, steps_per_epoch: int):
    import keras

    lr = phase.learning_rate
    if phase.schedule == "cosine":
        total = phase.epochs * steps_per_epoch
        warmup = min(int(phase.warmup_epochs * steps_per_epoch), total // 2)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr * 0.01 if warmup else lr,
            decay_steps=total - warmup,
            alpha=0.01,
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    elif phase.schedule not in ("constant", "plateau"):
        raise ValueError(f"unknown schedule {phase.schedule!r}")
    if phase.optimizer == "sgd-nesterov":
        return keras.optimizers.SGD(
            lr, momentum=0.9, nesterov=True, weight_decay=phase.weight_decay or None
        )
    if phase.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=phase.weight_decay)
    if phase.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    raise ValueError(f"unknown optimizer {phase.optimizer!r}")


def _epoch_timer():
    """A callback that adds ``epoch_time_s`` to each epoch's logs (and so the CSV)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_time_s"] = round(time.perf_counter() - self.started, 1)

    return EpochTimer()


def _monitors(phase_dir: Path, phase: Phase):
    """The callbacks that watch validation accuracy: the plateau schedule (or
    None), the best epoch's checkpoint, and early stopping (or None)."""
    import keras

    plateau = early = None
    if phase.schedule == "plateau":
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="val_accuracy",
            mode="max",
            factor=phase.plateau_factor,
            patience=phase.plateau_patience,
            min_lr=phase.learning_rate * 0.01,
        )
    if phase.early_stopping_patience:
        early = keras.callbacks.EarlyStopping(
            monitor="val_accuracy",
            mode="max",
            patience=phase.early_stopping_patience,
        )  # the phase ends on best.keras, so no copy of the best weights here
    best = keras.callbacks.ModelCheckpoint(
        str(phase_dir / "best.keras"),
        monitor="val_accuracy",
        mode="max",
        save_best_only=True,
    )
    return plateau, best, early


def _callbacks(config: TrainConfig, phase_dir: Path, phase: Phase):
    import keras
    from tqdm.keras import TqdmCallback

    history = phase_dir / "val_history.json"
    plateau, best, early = _monitors(phase_dir, phase)
    monitors = [c for c in (plateau, best, early) if c is not None]
    callbacks = [
        # Before the backup, so that every epoch the backup holds is in the history
        # and the backup holds the rate the plateau schedule has just cut.
        val_history(history),
        *([plateau] if plateau else []),  # logs the rate, so before the CSV logger
        keras.callbacks.BackupAndRestore(str(phase_dir / "backup")),
        _epoch_timer(),  # before the CSV logger, which writes the logs it is given
        keras.callbacks.CSVLogger(str(config.out / "training_log.csv"), append=True),
        best,
        *([early] if early else []),
        TqdmCallback(verbose=1, leave=True),
    ]
    if config.snapshots:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(phase_dir / "epochs" / "epoch-{epoch:02d}.weights.h5"),
                save_weights_only=True,
            )
        )
    return [*callbacks, resume(monitors, history)]  # last: after Keras' resets


def _load_init(model, init: Path) -> None:
    from emotion_contract.layers import load_keras_model

    # A flip-averaged model holds the plain one's weights in the same order.
    source = load_keras_model(init)
    model.set_weights(source.get_weights())
    logger.info("initialised weights from %s", init)


def _run_phase(model, config: TrainConfig, index: int, phase: Phase, data) -> None:
    import keras

    (x_train, y_train, w_train), (x_val, y_val) = data
    phase_dir = config.checkpoint_dir / f"phase{index}-{phase.name}"
    done = phase_dir / "done.keras"
    if done.exists():  # finished before an interruption: take its weights and go on
        model.set_weights(keras.saving.load_model(done, compile=False).get_weights())
        logger.info("phase %s already done, loaded %s", phase.name, done)
        return
    phase_dir.mkdir(parents=True, exist_ok=True)
    set_trainable(model, phase.trainable)
    recipe = config.recipe
    if recipe.mixup:  # mixed in numpy, batch by batch (full batches only)
        batches = FixedBatches(
            x_train,
            y_train,
            w_train,
            recipe.batch_size,
            seed=config.seed + index,
            mixup_alpha=recipe.mixup,
        )
        train_data = {"x": batches}
        steps = len(batches)
    else:
        train_data = {
            "x": x_train,
            "y": y_train,
            "sample_weight": w_train,
            "batch_size": recipe.batch_size,
            "shuffle": True,
        }
        steps = math.ceil(len(x_train) / recipe.batch_size)
    model.compile(
        optimizer=_optimizer(phase, steps),
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=recipe.label_smoothing
        ),
        metrics=["accuracy"],
        # XLA is TensorFlow's choice to make here; JAX always compiles.
        jit_compile=config.xla if keras.backend.backend() == "tensorflow" else "auto",
    )
    logger.info("phase %s: %d epochs x %d steps", phase.name, phase.epochs, steps)
    model.fit(
        **train_data,
        validation_data=(x_val, y_val),
        validation_batch_size=recipe.batch_size,
        epochs=phase.epochs,
        verbose=0,
        callbacks=_callbacks(config, phase_dir, phase),
    )
    best = phase_dir / "best.keras"
    if best.exists():
        # The epoch with the best validation accuracy (never test), also when it
        # came before an interruption or early stopping.
        model.set_weights(keras.saving.load_model(best, compile=False).get_weights())
    model.save(done)


def train(config: TrainConfig) -> Path:
    """Run every phase of the recipe and write ``OUT/model.keras`` with its card.

    Returns:
        The path of the saved model.
    """
    import keras

    from . import card

    keras.utils.set_random_seed(config.seed)
    config.out.mkdir(parents=True, exist_ok=True)
    full = load_cached(config.data, "train", config.cache_dir)
    train_split, val_split = stratified_split(full, val_fraction=config.val_fraction)
    if config.limit:
        pick = np.random.default_rng(config.seed).permutation(len(train_split))
        train_split = train_split.subset(np.sort(pick[: config.limit]))
    weights = class_weights(train_split.labels, config.recipe.class_weight_power)
    targets = _targets(train_split)
    if config.teachers:
        teacher = teacher_probs(
            config.teachers, train_split, config.out / "teacher_probs.npz"
        )
        targets = distill_targets(targets, teacher, config.distill_weight)
    data = (
        (_inputs(train_split), targets, weights[train_split.labels]),
        (_inputs(val_split), _targets(val_split)),
    )
    model = build_model(config.recipe)
    if config.init:
        _load_init(model, config.init)
    # With stability training, fit a wrapper that shares model's weights.
    fitted = stability_model(model, config.recipe) if config.recipe.stability else model
    started = time.time()
    for index, phase in enumerate(config.recipe.phases):
        _run_phase(fitted, config, index, phase, data)
    facts = {
        "wall_time_s": round(time.time() - started, 1),
        "hardware": f"{platform.machine()}, {_cpu_count()} CPU threads, "
        f"keras {keras.__version__} on {keras.backend.backend()}",
        "data_sha256": full.digest(),
        "train_images": len(train_split),
        "val_images": len(val_split),
        "seed": config.seed,
        "init": str(config.init) if config.init else None,
    }
    if config.teachers:
        facts["teachers"] = [str(t) for t in config.teachers]
        facts["distill_weight"] = config.distill_weight
        # How often the teachers' top class is the label, on the faces they teach.
        facts["teacher_train_accuracy"] = round(
            float((teacher.argmax(axis=1) == train_split.labels).mean()), 4
        )
    path = config.out / "model.keras"
    card.save_with_card(model, path, config, facts)
    return path


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
