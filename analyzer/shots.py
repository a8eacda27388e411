"""Find shot boundaries between consecutive analyzed frames.

Edited footage cuts from one shot to another; boxes carried across a cut land on
whatever the new shot shows there, and a track would run on into another person.
:class:`ShotDetector` compares each analyzed frame with the previous one on a
64x36 HSV thumbnail (the mean absolute difference of hue, saturation and value,
PySceneDetect's content measure) and also starts a shot when the picture turns
black or comes back from black, or when the frame size changes. A causal version
of PySceneDetect's adaptive rule catches cuts between similar-looking shots: a
smaller jump counts when it stands far above the shot's recent motion.

Thresholds were chosen on sampled and full-rate frames of ../shared/media and the
samples (``docs/shots.md``): cuts scored 44.7-67.1, motion within a shot at most
24.6 at 5 fps (phone_street, a night street) and at most 10.2 every frame.
"""

from __future__ import annotations

from collections import deque

import numpy as np

THUMB = (64, 36)  # width, height of the compared thumbnail
HARD_CUT = 35.0  # content score that is a cut whatever came before
SOFT_CUT = 20.0  # a smaller score is a cut when it is also ...
SOFT_RATIO = 4.0  # ... this many times the median of the shot's recent scores
HISTORY = 8  # recent scores kept for that median (at least 3 needed)
BLACK_LEVEL = 16.0  # mean value (0-255) under which a frame is black


def content_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two HSV thumbnails (hue taken as a circle)."""
    d = np.abs(a - b)
    d[..., 0] = np.minimum(d[..., 0], 180.0 - d[..., 0])
    return float(d.mean())


class ShotDetector:
    """Numbers the shots of one video as its analyzed frames go by.

    Example:
        >>> shots = ShotDetector()
        >>> [shots.update(frame) for frame in frames]  # doctest: +SKIP
        [0, 0, 0, 1, 1]
    """

    def __init__(self) -> None:
        self.shot = -1
        self._prev: np.ndarray | None = None
        self._shape: tuple | None = None
        self._black = False
        self._scores: deque[float] = deque(maxlen=HISTORY)

    def update(self, image: np.ndarray) -> int:
        """The shot of ``image`` (BGR), the frame analyzed after the last one."""
        import cv2

        small = cv2.resize(image, THUMB, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV).astype(np.float32)
        black = float(hsv[..., 2].mean()) < BLACK_LEVEL
        if self._prev is None or self._boundary(hsv, image.shape, black):
            self.shot += 1
            self._scores.clear()
        self._prev, self._shape, self._black = hsv, image.shape, black
        return self.shot

    def _boundary(self, hsv: np.ndarray, shape: tuple, black: bool) -> bool:
        if shape != self._shape or black != self._black:
            return True
        score = content_score(self._prev, hsv)
        if score >= HARD_CUT:
            return True
        recent = sorted(self._scores)
        soft = (
            len(recent) >= 3
            and score >= SOFT_CUT
            and score >= SOFT_RATIO * recent[len(recent) // 2]
        )
        self._scores.append(score)
        return soft
