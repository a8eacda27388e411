"""Calibration: the one step between a model's output and the probabilities anyone
reads (evaluation, the analyzer on Keras or LiteRT).

Two stages, both fitted on validation by ``python -m training calibrate`` and
stored in the model file, both monotone so the most probable class never changes:

1. Temperature scaling (Guo et al., ICML 2017): the model's output (a softmax, or
   the mean of two views' softmaxes) is read as log-probabilities and divided by
   the temperature.
2. A confidence map (top-label calibration, Gupta & Ramdas, ICLR 2022): the top
   probability is replaced by a monotone piecewise-linear function of itself
   (isotonic regression of "was the top class right" on it), and the other
   classes are rescaled to fill the rest. One temperature cannot fix a model that
   is overconfident at middling confidence and underconfident near the top, which
   is what label smoothing leaves behind.
"""

from __future__ import annotations

import numpy as np

TINY = 1e-30  # keeps log(0) finite; far below any probability a model gives
# The mapped top probability stays this far above the runner-up and below 1.
MARGIN = 1e-6


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` ``(n, k)`` at ``temperature``: softmax(log(probs) / T), float32."""
    probs = np.asarray(probs, dtype=np.float32)
    if temperature == 1.0 or not len(probs):
        return probs
    logits = np.log(np.maximum(probs.astype(np.float64), TINY)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def map_confidence(
    probs: np.ndarray, knots: tuple[tuple[float, ...], tuple[float, ...]] | None
) -> np.ndarray:
    """``probs`` with each row's top probability ``c`` replaced by the piecewise-
    linear map through ``knots`` (x ascending, y not descending; flat outside),
    the other classes scaled by ``(1 - c') / (1 - c)``; float32.

    The new top probability is kept above the scaled runner-up, so the argmax is
    the same row by row (ties go to the lower class index, as argmax does).
    """
    probs = np.asarray(probs, dtype=np.float32)
    if knots is None or not len(probs):
        return probs
    p = probs.astype(np.float64)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(p))
    top = p.argmax(axis=1)
    c = p[rows, top]
    runner_up = np.partition(p, -2, axis=1)[:, -2] if p.shape[1] > 1 else 0 * c
    mapped = np.interp(c, np.asarray(knots[0]), np.asarray(knots[1]))
    # c' >= r (1 - c') / (1 - c)  <=>  c' >= r / (1 - c + r): the top stays on top.
    floor = runner_up / np.maximum(1.0 - c + runner_up, TINY) + MARGIN
    mapped = np.clip(np.maximum(mapped, floor), MARGIN, 1.0 - MARGIN)
    mapped = np.where(c >= 1.0 - MARGIN, c, mapped)  # nothing left to rescale
    scale = (1.0 - mapped) / np.maximum(1.0 - c, TINY)
    out = p * scale[:, None]
    out[rows, top] = mapped
    return out.astype(np.float32)


def calibrate(probs: np.ndarray, info) -> np.ndarray:
    """The calibrated probabilities for a model's output: its temperature, then
    its confidence map (``info`` a :class:`emotion_contract.modelfile.ModelInfo`)."""
    return map_confidence(temper(probs, info.temperature), info.confidence_map)
