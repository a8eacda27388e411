"""Custom Keras layers that saved emotion models may contain.

Imported (which imports Keras) only when a model is loaded, through
:func:`load_keras_model`, so that ``keras.saving`` knows them.
"""

from __future__ import annotations

from pathlib import Path

import keras


@keras.saving.register_keras_serializable(package="emotion_analytics")
class HorizontalFlip(keras.layers.Layer):
    """Mirror NHWC images left to right, deterministically (unlike RandomFlip)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)


def load_keras_model(path: str | Path):
    """``keras.saving.load_model`` with this project's layers registered."""
    return keras.saving.load_model(path, compile=False)
