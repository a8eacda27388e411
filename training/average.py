"""Weight averaging: the mean of a run's last epochs' weights, as one model.

Averaging the weights of the last few epochs of a run (stochastic weight averaging)
lands nearer the centre of the region they explore and often generalises better
than any one of them, at no cost at inference. Snapshots are the ``.weights.h5``
files of one architecture (``train --snapshots`` keeps one per epoch in the
checkpoint folder); BatchNorm's moving statistics are averaged with the rest. The
average is kept only when it beats the given model on validation; the test split
plays no part in the choice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_contract.layers import load_keras_model

from .card import save_derived
from .data import load_cached, load_validation
from .evaluate import metrics, predict


def averaged_weights(model, snapshots: list[Path]) -> list[np.ndarray]:
    """The element-wise mean of ``snapshots`` loaded into ``model`` in turn."""
    total = None
    for path in snapshots:
        model.load_weights(path)
        weights = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
        if total is None:
            total = weights
        else:
            total = [t + w for t, w in zip(total, weights, strict=True)]
    return [t / len(snapshots) for t in total]


def choose(
    model_path: Path,
    snapshots: list[Path],
    data_root: Path,
    out: Path,
    *,
    cache_dir: Path | None = None,
    seed: int = 1337,
) -> dict:
    """Compare ``model_path`` with the average of ``snapshots`` on validation.

    Returns:
        Both validation accuracies, and ``saved`` (the path, or ``None``).
    """
    if len(snapshots) < 2:
        raise ValueError("weight averaging needs at least two snapshots")
    model = load_keras_model(model_path)
    original = model.get_weights()
    val = load_validation(data_root, cache_dir, seed=seed)
    given = metrics(val.labels, predict(model, val.images))
    mean = averaged_weights(model, snapshots)
    model.set_weights([m.astype(o.dtype) for m, o in zip(mean, original, strict=True)])
    averaged = metrics(val.labels, predict(model, val.images))
    report = {
        "snapshots": [str(p) for p in snapshots],
        "validation_given": given["accuracy"],
        "validation_averaged": averaged["accuracy"],
        "saved": None,
    }
    if averaged["accuracy"] <= given["accuracy"]:
        return report
    test = load_cached(data_root, "test", cache_dir)
    save_derived(
        model,
        model_path,
        out,
        key="weight_average",
        suffix=f"-avg{len(snapshots)}",
        report=report,
        data=(val, test),
    )
    report["saved"] = str(out)
    return report
