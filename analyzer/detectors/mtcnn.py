"""MTCNN from the ``mtcnn`` package: TensorFlow-native, weights inside the wheel."""

from __future__ import annotations

import numpy as np

from ..faces import Faces
from .base import DetectorUnavailable


class MtcnnDetector:
    """The three-stage MTCNN cascade (P-, R-, O-Net), run on whole batches.

    Args:
        threshold: minimum O-Net confidence to keep a face.
    """

    name = "mtcnn"

    def __init__(self, *, threshold: float = 0.9) -> None:
        try:
            from mtcnn import MTCNN
        except ImportError as exc:
            raise DetectorUnavailable("the mtcnn package is not installed") from exc
        self._mtcnn = MTCNN(device="CPU:0")
        self.threshold = threshold

    def detect(self, frames: list[np.ndarray]) -> list[Faces]:
        if not frames:
            return []
        rgb = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
        # mtcnn 1.0.0 fails on batches when min_face_size or the stage thresholds
        # are passed (shape mismatch in P-Net), so filter by confidence afterwards.
        found = self._mtcnn.detect_faces(rgb, box_format="xyxy")
        if len(frames) == 1 and (not found or isinstance(found[0], dict)):
            found = [found]
        return [self._convert(faces) for faces in found]

    def _convert(self, faces: list[dict]) -> Faces:
        faces = [f for f in faces if f["confidence"] >= self.threshold]
        if not faces:
            return Faces.empty()
        boxes = np.array([f["box"] for f in faces], dtype=np.float32)
        scores = np.array([f["confidence"] for f in faces], dtype=np.float32)
        return Faces(boxes, scores)
