"""OpenCV's frontal-face Haar cascade: fast, offline, inside the OpenCV wheel."""

from __future__ import annotations

import numpy as np

from ..faces import Faces
from .base import DetectorUnavailable

CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    """Viola-Jones cascade on an equalised greyscale frame.

    Args:
        min_face: smallest face side, as a fraction of the frame's shorter side.
        scale_factor, min_neighbors: ``cv2.CascadeClassifier.detectMultiScale``'s.
    """

    name = "haar"

    def __init__(
        self,
        *,
        min_face: float = 0.08,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        import cv2

        path = getattr(getattr(cv2, "data", None), "haarcascades", "") + CASCADE
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise DetectorUnavailable(
                f"OpenCV has no {CASCADE} (opencv-python 5.x dropped the cascades); "
                "install the project's pinned opencv-contrib-python-headless 4.x"
            )
        self._cv2 = cv2
        self.min_face, self.scale_factor, self.min_neighbors = (
            min_face,
            scale_factor,
            min_neighbors,
        )

    def detect(self, frames: list[np.ndarray]) -> list[Faces]:
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> Faces:
        cv2 = self._cv2
        gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        side = max(16, int(min(gray.shape) * self.min_face))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
        if len(boxes) == 0:
            return Faces.empty()
        boxes = np.asarray(boxes, dtype=np.float32)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        # The last stage's weight is a margin, not a probability: squash it to 0..1.
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float32).ravel()))
        return Faces(boxes, scores)
