"""LiteRT (TFLite + XNNPACK) copies of Keras networks, for fast CPU inference:
the emotion classifier and MTCNN's three networks.

The Keras network stays the source of truth; a copy is used only when it was
checked against it on a fixed batch and records the source's SHA-256. The package
ships such copies of the shipped model and of MTCNN (``python -m analyzer.ship``
rebuilds them), so analysis needs no TensorFlow. Any other model is converted on
first use (TensorFlow, the ``[train]`` extra) and cached under
``$EMOTION_ANALYZER_CACHE`` (default ``~/.cache/emotion-analytics``), named by its
digest so a changed model never meets a stale copy. Speed, load time and agreement
against Keras: ``python -m benchmarks.classifier`` (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emotion_contract.extras import require

logger = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-4  # a copy that differs more from the Keras model is refused
RUNTIMES = ("auto", "keras", "litert")


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


def pick(
    runtime: str,
    build_litert: Callable[[], object],
    build_keras: Callable[[], object],
    *,
    unavailable: type[Exception],
) -> tuple[str, object]:
    """Build the LiteRT or the Keras/TensorFlow variant of something.

    ``litert`` insists (a failure raises ``unavailable``); ``auto`` takes LiteRT
    when it is installed and falls back, with a warning, when the copy cannot be
    made; ``keras`` never tries.

    Returns:
        ``("litert" | "keras", the built object)``.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {RUNTIMES}")
    if runtime == "litert" or (runtime == "auto" and available()):
        try:
            return "litert", build_litert()
        except (ConversionError, ImportError, OSError) as exc:
            if runtime == "litert":
                raise unavailable(f"no LiteRT copy: {exc}") from exc
            logger.warning("LiteRT unavailable, using Keras/TensorFlow: %s", exc)
    return "keras", build_keras()


def _convert(keras_model, input_shape: tuple) -> bytes:
    """Trace inference (``training=False``), freeze the weights, convert.

    Args:
        input_shape: one input's shape without the batch axis; ``None`` for a
            dimension the copy must accept at any size (set per interpreter).
    """
    tf = require("tensorflow", "train", "Converting a model to LiteRT")
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    serve = tf.function(lambda x: keras_model(x, training=False), autograph=False)
    frozen = convert_variables_to_constants_v2(
        serve.get_concrete_function(tf.TensorSpec([None, *input_shape], tf.float32))
    )
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


def cached_copy(
    keras_path: Path,
    sha256: str,
    load_keras: Callable[[], object],
    *,
    bundled: Path | None = None,
    input_shape: tuple | None = None,
    check_shape: tuple | None = None,
    check_range: tuple[float, float] = (0.0, 255.0),
) -> Path:
    """The verified LiteRT copy of ``keras_path``, converting it if needed.

    Args:
        sha256: the source's digest; it names the copy.
        load_keras: loads the Keras model; called only when a conversion is needed.
        bundled: a copy shipped with the package, taken when it is intact and was
            made from this very source.
        input_shape: input shape without the batch axis (default: the model's).
        check_shape: a concrete batch shape for the check (default: 16 inputs of
            ``input_shape``); inputs are drawn uniformly from ``check_range``.

    Raises:
        ConversionError: the converted copy's outputs differ from the Keras model's.
        MissingExtra: a conversion is needed and TensorFlow is not installed.
    """
    if bundled is not None and made_from(bundled, sha256):
        return bundled
    target = cache_dir() / f"{sha256[:24]}.tflite"
    if _intact(target):
        return target
    if target.exists():
        logger.warning("the cached LiteRT copy %s is damaged; rebuilding it", target)
    logger.warning("converting %s to LiteRT once (cached in %s)", keras_path, target)
    write_copy(
        target,
        keras_path,
        sha256,
        load_keras(),
        input_shape=input_shape,
        check_shape=check_shape,
        check_range=check_range,
    )
    return target


def write_copy(
    target: Path,
    source: Path,
    sha256: str,
    keras_model,
    *,
    input_shape: tuple | None = None,
    check_shape: tuple | None = None,
    check_range: tuple[float, float] = (0.0, 255.0),
) -> float:
    """Convert ``keras_model``, check it and write ``target`` with its record
    (``target`` + ``.json``: source, digests, the largest difference measured).
    An existing ``target`` that still matches the model within ``MAX_ABS_DIFF`` is
    kept and only its record rewritten.

    Returns:
        The largest absolute difference from the Keras model on the check batch.

    Raises:
        ConversionError: the copy's outputs differ by more than ``MAX_ABS_DIFF``.
    """
    input_shape = tuple(input_shape or keras_model.input_shape[1:])
    rng = np.random.default_rng(0)
    batch = rng.uniform(*check_range, check_shape or (16, *input_shape))
    batch = batch.astype(np.float32)
    if target.is_file():
        # A copy that still matches (the model's metadata changed, not its
        # weights) is kept: the converter's bytes vary between machines. A
        # damaged one fails to load and is converted again.
        try:
            diff = _max_difference(target, keras_model, batch)
        except Exception:  # LiteRT raises ValueError or RuntimeError on bad bytes
            diff = float("inf")
        if diff <= MAX_ABS_DIFF:
            _write_record(target, source, sha256, diff, target.read_bytes())
            return diff
    data = _convert(keras_model, input_shape)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    diff = _max_difference(tmp, keras_model, batch)
    if not diff <= MAX_ABS_DIFF:  # NaN fails too
        tmp.unlink()
        raise ConversionError(f"LiteRT copy differs from {source} by {diff:g}")
    _write_record(target, source, sha256, diff, data)
    tmp.replace(target)
    return diff


def _write_record(
    copy: Path, source: Path, sha256: str, diff: float, data: bytes
) -> None:
    """The copy's record: what it was made from, its digest, the check's result."""
    meta = {
        "source": source.name,
        "source_sha256": sha256,
        "max_abs_diff": diff,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    _record(copy).write_text(json.dumps(meta, indent=2) + "\n")


def made_from(copy: Path, sha256: str | None) -> bool:
    """Whether ``copy`` is intact and was made from the source with ``sha256``
    (``None``: from whatever source its record names)."""
    if not _intact(copy):
        return False
    return sha256 is None or _read_record(copy).get("source_sha256") == sha256


def _record(copy: Path) -> Path:
    return copy.with_name(copy.name + ".json")


def _read_record(copy: Path) -> dict:
    meta = json.loads(_record(copy).read_text())
    if not isinstance(meta, dict):
        raise ValueError(f"{_record(copy)} is not a record")
    return meta


def _intact(target: Path) -> bool:
    """Whether a cached copy is there and has the digest recorded when it was made
    (a copy cut short by a full disk or a kill is rebuilt, not loaded)."""
    try:
        meta = _read_record(target)
        return hashlib.sha256(target.read_bytes()).hexdigest() == meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _max_difference(tflite_path: Path, keras_model, batch: np.ndarray) -> float:
    expected = keras_model(batch, training=False)
    if not isinstance(expected, list | tuple):
        expected = [expected]
    got = LiteRTNet(tflite_path, batch.shape)(batch)
    if len(got) != len(expected):
        return float("nan")
    pairs = zip(got, expected, strict=True)
    return max(float(np.abs(g - np.asarray(e)).max()) for g, e in pairs)


class LiteRTNet:
    """One interpreter for one input shape (batch axis included).

    Calling it returns the outputs in the order the Keras model returns them.
    """

    def __init__(
        self, path: Path, input_shape: tuple | None = None, *, batch_size: int = 1
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(
            model_path=str(path), num_threads=os.cpu_count() or 1
        )
        self._input = self._interpreter.get_input_details()[0]
        # Outputs of a traced function are named Identity, Identity_1, ...
        self._outputs = sorted(
            self._interpreter.get_output_details(),
            key=lambda d: (len(d["name"]), d["name"]),
        )
        if input_shape is None:  # the model's own, at this batch size
            input_shape = (batch_size, *self._input["shape"][1:])
        self.input_shape = tuple(int(v) for v in input_shape)
        self._interpreter.resize_tensor_input(self._input["index"], self.input_shape)
        self._interpreter.allocate_tensors()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self._interpreter.set_tensor(self._input["index"], x)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(o["index"]).copy() for o in self._outputs]


class LiteRTModel:
    """A single-output net behind ``predict_on_batch``, at a fixed batch size.

    Shorter batches are padded, so the interpreter never reallocates; a short
    remainder (a photo's one face, a video's last crops) goes through a second,
    small interpreter, made on first use, instead of a mostly padded full batch.
    """

    SMALL_BATCH = 8

    def __init__(self, path: Path, *, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._path = path
        self._net = LiteRTNet(path, batch_size=batch_size)
        self._small: LiteRTNet | None = None

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        full = len(x) - len(x) % self.batch_size
        out = [o[0] for o in predict_padded(self._net, x[:full])]
        rest = x[full:]
        if len(rest):
            net = self._net
            if len(rest) <= self.SMALL_BATCH < self.batch_size:
                if self._small is None:
                    self._small = LiteRTNet(self._path, batch_size=self.SMALL_BATCH)
                net = self._small
            out += [o[0] for o in predict_padded(net, rest)]
        return np.concatenate(out)


def predict_padded(net: LiteRTNet, x: np.ndarray) -> list[list[np.ndarray]]:
    """Run ``x`` through ``net`` in chunks of its batch size, padding the last.

    Returns:
        One list of outputs per chunk, padding rows removed.
    """
    size = net.input_shape[0]
    out = []
    for start in range(0, len(x), size):
        chunk = np.ascontiguousarray(x[start : start + size], dtype=np.float32)
        n = len(chunk)
        if n < size:
            pad = np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        out.append([o[:n] for o in net(chunk)])
    return out
