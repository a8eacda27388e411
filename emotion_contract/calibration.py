"""Temperature scaling: the one calibration step between a model's output and the
probabilities anyone reads (evaluation, the analyzer on Keras or LiteRT).

The model's output (a softmax, or the mean of two views' softmaxes) is read as
log-probabilities and divided by the temperature fitted on validation
(``python -m training calibrate``; Guo et al., ICML 2017). It is monotone, so the
most probable class never changes.
"""

from __future__ import annotations

import numpy as np

TINY = 1e-30  # keeps log(0) finite; far below any probability a model gives


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` ``(n, k)`` at ``temperature``: softmax(log(probs) / T), float32."""
    probs = np.asarray(probs, dtype=np.float32)
    if temperature == 1.0 or not len(probs):
        return probs
    logits = np.log(np.maximum(probs.astype(np.float64), TINY)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)
