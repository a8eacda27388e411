"""A LiteRT (TFLite + XNNPACK) copy of the Keras model, for fast CPU inference.

The ``.keras`` file stays the source of truth. On first use its copy is converted,
checked against the Keras model on a fixed batch, and cached under
``$EMOTION_ANALYZER_CACHE`` (default ``~/.cache/emotion-analytics``), named by the
Keras file's SHA-256 so a changed model never meets a stale copy. Speed, load time
and agreement against Keras: ``python benchmarks/classifier.py`` (README,
"Classification").
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-4  # a copy that differs more from the Keras model is refused


class ConversionError(RuntimeError):
    """The LiteRT copy does not reproduce the Keras model."""


def cache_dir() -> Path:
    root = os.environ.get("EMOTION_ANALYZER_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "emotion-analytics"


def available() -> bool:
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _convert(keras_model) -> bytes:
    """Trace inference (``training=False``), freeze the weights, convert."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    shape = [None, *keras_model.input_shape[1:]]
    serve = tf.function(lambda x: keras_model(x, training=False), autograph=False)
    frozen = convert_variables_to_constants_v2(
        serve.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    )
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def cached_copy(
    keras_path: Path, sha256: str, load_keras: Callable[[], object]
) -> Path:
    """The verified LiteRT copy of ``keras_path``, converting it if needed.

    Args:
        load_keras: loads the Keras model; called only when a conversion is needed.

    Raises:
        ConversionError: the converted copy's outputs differ from the Keras model's.
    """
    target = cache_dir() / f"{sha256[:24]}.tflite"
    if target.exists():
        return target
    logger.warning("converting %s to LiteRT once (cached in %s)", keras_path, target)
    keras_model = load_keras()
    data = _convert(keras_model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    diff = _max_difference(tmp, keras_model)
    if not diff <= MAX_ABS_DIFF:  # NaN fails too
        tmp.unlink()
        raise ConversionError(f"LiteRT copy differs from {keras_path} by {diff:g}")
    meta = {"source": str(keras_path), "source_sha256": sha256, "max_abs_diff": diff}
    target.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(target)
    return target


def _max_difference(tflite_path: Path, keras_model) -> float:
    shape = keras_model.input_shape[1:]
    batch = np.random.default_rng(0).integers(0, 256, (16, *shape)).astype(np.float32)
    expected = np.asarray(keras_model.predict_on_batch(batch))
    got = LiteRTModel(tflite_path, batch_size=len(batch)).predict_on_batch(batch)
    return float(np.abs(got - expected).max())


class LiteRTModel:
    """The interpreter behind ``predict_on_batch``, at a fixed batch size.

    Shorter batches are padded, so the interpreter never reallocates.
    """

    def __init__(self, path: Path, *, batch_size: int = 64) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(
            model_path=str(path), num_threads=os.cpu_count() or 1
        )
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.batch_size = batch_size
        shape = [batch_size, *self._input["shape"][1:]]
        self._interpreter.resize_tensor_input(self._input["index"], shape)
        self._interpreter.allocate_tensors()

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(x), self.batch_size):
            chunk = x[start : start + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:
                pad = np.zeros((self.batch_size - n, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            self._interpreter.set_tensor(self._input["index"], chunk)
            self._interpreter.invoke()
            out.append(self._interpreter.get_tensor(self._output["index"])[:n].copy())
        return np.concatenate(out)
