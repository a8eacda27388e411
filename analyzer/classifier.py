"""Crop faces the way the model was trained and classify them in batches.

Everything model-specific (class order, input size, colour mode, crop margin) comes
from the model file's own metadata (:mod:`emotion_contract.modelfile`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from emotion_contract.calibration import calibrate
from emotion_contract.extras import MissingExtra, require
from emotion_contract.labels import EMOTIONS
from emotion_contract.modelfile import ModelFileError, ModelInfo, file_sha256, read_info
from emotion_contract.shipped import SHIPPED_MODEL as DEFAULT_MODEL


class ModelUnavailable(RuntimeError):
    """No usable model: the message says how to get one."""


def default_model() -> Path:
    """The model shipped with the package.

    Raises:
        ModelUnavailable: it is not there (e.g. a source checkout without it).
    """
    if not DEFAULT_MODEL.is_file():
        raise ModelUnavailable(
            f"no model at {DEFAULT_MODEL}. Train one with `python -m training train "
            "--data FER2013_ROOT --out runs/mine` and pass --model "
            "runs/mine/model.keras, or reinstall the package, which ships one."
        )
    return DEFAULT_MODEL


def square_box(box: np.ndarray, margin: float) -> tuple[float, float, float]:
    """Centre and side of the square that holds ``box`` widened by ``margin``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, max(side, 1.0)


class EmotionClassifier:
    """A Keras emotion model with its metadata.

    Args:
        model_path: a ``.keras`` file saved by the training package.

    Raises:
        ModelUnavailable: the file is missing, unreadable or its classes are not
            FER2013's seven.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        runtime: str = "auto",
        batch_size: int = 64,
        crop_margin: float | None = None,
    ) -> None:
        try:
            self.info: ModelInfo = read_info(model_path)
        except ModelFileError as exc:
            raise ModelUnavailable(str(exc)) from exc
        if crop_margin is not None:  # instead of the file's (to measure framing)
            self.info = dataclasses.replace(self.info, crop_margin=crop_margin)
        if sorted(self.info.class_names) != sorted(EMOTIONS):
            raise ModelUnavailable(
                f"{model_path} predicts {self.info.class_names}; the analyzer needs "
                f"the seven FER2013 classes {EMOTIONS}"
            )
        # Output column j of the model is EMOTIONS[order[j]].
        self._order = [self.info.class_names.index(name) for name in EMOTIONS]
        self.path = Path(model_path)
        self.sha256 = file_sha256(model_path)
        self.runtime, self._model = self._load(runtime, batch_size)

    def _load(self, runtime: str, batch_size: int):
        """The Keras model, or its verified LiteRT copy (``auto``: when installed):
        the one shipped beside the model file (``model.tflite``), else a cached one."""
        from . import litert

        def fast():
            path = litert.cached_copy(
                self.path,
                self.sha256,
                self._load_keras,
                bundled=self.path.with_suffix(".tflite"),
            )
            return litert.LiteRTModel(path, batch_size=batch_size)

        try:
            return litert.pick(
                runtime, fast, self._load_keras, unavailable=ModelUnavailable
            )
        except ModelUnavailable:
            raise
        except MissingExtra as exc:
            raise ModelUnavailable(str(exc)) from exc
        except Exception as exc:  # a damaged archive: weights missing or unreadable
            raise ModelUnavailable(
                f"cannot load the model {self.path}: {type(exc).__name__}: {exc}"
            ) from exc

    def _load_keras(self):
        require(
            "keras",
            "train",
            f"Running {self.path.name} on Keras (--classifier-runtime keras, or a "
            "model with no LiteRT copy yet, which is converted with TensorFlow)",
        )
        from emotion_contract.layers import load_keras_model

        return load_keras_model(self.path)

    @property
    def name(self) -> str:
        return self.info.name

    def crops(self, frame: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        """The model's inputs for a frame's faces: square crops, edges replicated.

        Args:
            frame: ``(h, w, 3) uint8`` BGR.
            boxes: ``(n, 4)`` xyxy face boxes.
        """
        import cv2

        if not len(boxes):
            return []
        code = (
            cv2.COLOR_BGR2GRAY
            if self.info.color_mode == "grayscale"
            else cv2.COLOR_BGR2RGB
        )
        frame = cv2.cvtColor(frame, code)  # once per frame, not per face
        h, w = self.info.input_size
        out = []
        for box in boxes:
            cx, cy, side = square_box(box, self.info.crop_margin)
            size = int(round(side))
            patch = cv2.getRectSubPix(frame, (size, size), (cx, cy))
            interp = cv2.INTER_AREA if size > w else cv2.INTER_LINEAR
            patch = cv2.resize(patch, (w, h), interpolation=interp)
            out.append(patch.reshape(h, w, self.info.channels))
        return out

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n, 7) float32`` in :data:`EMOTIONS` order
        (the model file's temperature and confidence map applied)."""
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        lo, hi = self.info.input_scale
        x = crops.astype(np.float32) * ((hi - lo) / 255.0) + lo
        probs = np.asarray(self._model.predict_on_batch(x), dtype=np.float32)
        probs = probs[:, self._order]
        probs = probs / probs.sum(axis=1, keepdims=True)
        return calibrate(probs, self.info)
