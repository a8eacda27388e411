"""Custom Keras layers that saved emotion models may contain.

Imported (which imports Keras) only when a model is loaded, through
:func:`load_keras_model`, so that ``keras.saving`` knows them.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="emotion_analytics")
class HorizontalFlip(keras.layers.Layer):
    """Mirror NHWC images left to right, deterministically (unlike RandomFlip)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)


def resample_matrix(n: int, shift: float, zoom: float) -> np.ndarray:
    """``(n, n)`` bilinear resampling along one axis, edges replicated.

    Output pixel ``u`` reads the input at the centre-relative position scaled by
    ``1 + zoom`` and moved by ``shift * n``: positive ``zoom`` shows a wider
    window (the face smaller), positive ``shift`` moves the window right / down.
    """
    u = np.arange(n) + 0.5 - n / 2
    src = n / 2 + u * (1.0 + zoom) + shift * n - 0.5
    lo = np.floor(src)
    frac = src - lo
    rows = np.arange(n)
    m = np.zeros((n, n), np.float64)
    np.add.at(m, (rows, np.clip(lo, 0, n - 1).astype(int)), 1 - frac)
    np.add.at(m, (rows, np.clip(lo + 1, 0, n - 1).astype(int)), frac)
    return m.astype(np.float32)


@keras.saving.register_keras_serializable(package="emotion_analytics")
class ShiftZoom(keras.layers.Layer):
    """Move and zoom NHWC images by fixed amounts (fractions of their size).

    Separable bilinear resampling as two matrix products, so it runs wherever the
    model runs (Keras on any backend, LiteRT) and is exactly linear in the input.
    """

    def __init__(self, dx: float = 0.0, dy: float = 0.0, zoom: float = 0.0, **kw):
        super().__init__(**kw)
        self.dx, self.dy, self.zoom = float(dx), float(dy), float(zoom)

    def build(self, input_shape) -> None:
        _, h, w, _ = input_shape
        self._rows = resample_matrix(h, self.dy, self.zoom)
        self._cols_t = resample_matrix(w, self.dx, self.zoom).T.copy()

    def call(self, inputs):
        ops = keras.ops
        rows, cols_t = (ops.convert_to_tensor(m) for m in (self._rows, self._cols_t))
        x = ops.transpose(inputs, (0, 3, 1, 2))  # N, C, H, W
        x = ops.matmul(ops.matmul(rows, x), cols_t)
        return ops.transpose(x, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "dx": self.dx, "dy": self.dy, "zoom": self.zoom}


def load_keras_model(path: str | Path):
    """``keras.saving.load_model`` with this project's layers registered."""
    return keras.saving.load_model(path, compile=False)
