"""Weight averaging: the mean of a run's last epochs' weights, as one model.

Averaging the weights of the last few epochs of a run (stochastic weight averaging)
lands nearer the centre of the region they explore and often generalises better
than any one of them, at no cost at inference. Snapshots are the ``.weights.h5``
files of one architecture (``train --snapshots`` keeps one per epoch in the
checkpoint folder); BatchNorm's moving statistics are averaged with the rest, or,
with ``recompute_bn``, measured again on the training faces for the averaged
weights (Izmailov et al., 2018). The average is kept only when it beats the given
model on validation; the test split plays no part in the choice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_contract.layers import load_keras_model

from .card import save_derived
from .data import load_cached, stratified_split
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


def recompute_batchnorm(model, images: np.ndarray, batch_size: int = 64) -> int:
    """Re-estimate every BatchNorm's moving mean and variance for the model's
    current weights: the base runs in training mode over ``images`` (resized and
    made RGB as in the model, without augmentation), each batch moving the
    statistics by BatchNorm's momentum. Returns how many batches ran."""
    import keras

    # The EfficientNet base: the nested model holding the BatchNorm layers (the
    # augmentation block is a nested model too, and holds none).
    base = next(
        layer
        for layer in model.layers
        if isinstance(layer, keras.Model)
        and any(isinstance(s, keras.layers.BatchNormalization) for s in layer.layers)
    )
    resize = next((layer for layer in model.layers if layer.name == "resize"), None)
    batches = 0
    for start in range(0, len(images) - batch_size + 1, batch_size):
        x = images[start : start + batch_size, ..., None].astype("float32")
        if resize is not None:
            x = resize(x)
        x = keras.ops.concatenate([x, x, x], axis=-1)
        base(x, training=True)
        batches += 1
    return batches


def choose(
    model_path: Path,
    snapshots: list[Path],
    data_root: Path,
    out: Path,
    *,
    cache_dir: Path | None = None,
    seed: int = 1337,
    recompute_bn: bool = False,
) -> dict:
    """Compare ``model_path`` with the average of ``snapshots`` on validation.

    Returns:
        Both validation accuracies, and ``saved`` (the path, or ``None``).
    """
    if len(snapshots) < 2:
        raise ValueError("weight averaging needs at least two snapshots")
    model = load_keras_model(model_path)
    original = model.get_weights()
    train, val = stratified_split(load_cached(data_root, "train", cache_dir))
    given = metrics(val.labels, predict(model, val.images))
    mean = averaged_weights(model, snapshots)
    model.set_weights([m.astype(o.dtype) for m, o in zip(mean, original, strict=True)])
    if recompute_bn:
        order = np.random.default_rng(seed).permutation(len(train))
        recompute_batchnorm(model, train.images[order])
    averaged = metrics(val.labels, predict(model, val.images))
    report = {
        "snapshots": [str(p) for p in snapshots],
        "validation_given": given["accuracy"],
        "validation_averaged": averaged["accuracy"],
        "recompute_bn": recompute_bn,
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
