"""Flip averaging: average a model's output on each face and on its mirror image.

A common test-time augmentation for FER2013, whose training faces are augmented
with horizontal flips. It is built into the saved model (a mirror branch that
shares the weights), so the analyzer, ``evaluate`` and the LiteRT copy all run the
same thing, at twice the classification cost. It is kept only when it beats the
plain model on validation; the test split plays no part in the choice.

With ``shift`` and ``zoom`` the two views also differ in framing: the plain one
reads a window moved by ``+shift`` (right and down, a fraction of the crop) and
widened by ``zoom``, the mirrored one the opposite window. The average then
changes less when a face detector places its box a few pixels differently, at the
same cost.
"""

from __future__ import annotations

from pathlib import Path

from emotion_contract.layers import HorizontalFlip, ShiftZoom, load_keras_model

from .card import save_derived
from .data import load_cached, load_validation
from .evaluate import metrics, predict


def flip_averaged(model, shift: float = 0.0, zoom: float = 0.0):
    """A model returning the mean of ``model`` on the input and on its mirror
    (with ``shift`` / ``zoom``: on two opposite windows, module docstring)."""
    import keras

    inputs = keras.Input(model.input_shape[1:], name="face")
    plain = inputs
    other = inputs
    if shift or zoom:
        plain = ShiftZoom(shift, shift, zoom, name="window")(inputs)
        other = ShiftZoom(-shift, -shift, -zoom, name="mirror_window")(inputs)
    mirrored = HorizontalFlip(name="mirror")(other)
    both = [model(plain), model(mirrored)]
    outputs = keras.layers.Average(name="flip_average")(both)
    return keras.Model(inputs, outputs, name=f"{model.name}_flipavg")


def choose(
    model_path: Path,
    data_root: Path,
    out: Path,
    *,
    cache_dir: Path | None = None,
    shift: float = 0.0,
    zoom: float = 0.0,
) -> dict:
    """Compare plain and flip-averaged on validation; save the latter if better.

    Returns:
        Both validation accuracies, and ``saved`` (the path, or ``None``).
    """
    plain = load_keras_model(model_path)
    averaged = flip_averaged(plain, shift, zoom)
    val = load_validation(data_root, cache_dir)
    scores = {
        name: metrics(val.labels, predict(m, val.images))
        for name, m in (("plain", plain), ("flip_average", averaged))
    }
    report = {
        "validation_plain": scores["plain"]["accuracy"],
        "validation_flip_average": scores["flip_average"]["accuracy"],
        "shift": shift,
        "zoom": zoom,
        "saved": None,
    }
    if report["validation_flip_average"] <= report["validation_plain"]:
        return report
    test = load_cached(data_root, "test", cache_dir)
    save_derived(
        averaged,
        model_path,
        out,
        key="flip_average",
        suffix="-shiftflip" if shift or zoom else "-flipavg",
        report=report,
        data=(val, test),
    )
    report["saved"] = str(out)
    return report
