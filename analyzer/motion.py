"""Carry face boxes between keyframes with sparse optical flow.

Between two detections a face moves; holding its last box crops it off-centre and
changes the emotion read from it. :class:`BoxFlow` follows a grid of points inside
each box with pyramidal Lucas-Kanade flow (OpenCV), keeps the points that track
back to where they started, and moves and scales the box by their median motion.
On a grey image of at most 640 px it costs under a millisecond per frame (36
points, forward and back; docs/performance.md), against about 12 ms for a
detection.
"""

from __future__ import annotations

import numpy as np

GRID = 6  # points per side, spread over the box's central part
MIN_POINTS = 6  # fewer good points than this: the move failed
FB_TOLERANCE = 1.0  # forward-backward error allowed, in (downscaled) pixels


class BoxFlow:
    """Moves boxes from the previous frame given to :meth:`step` to the next one.

    Args:
        max_side: frames are downscaled so their longer side is at most this.
    """

    def __init__(self, max_side: int = 640) -> None:
        self.max_side = max_side
        self._prev: np.ndarray | None = None
        self._scale = 1.0

    def reset(self, image: np.ndarray) -> None:
        """Start again from ``image`` (a keyframe)."""
        self._prev, self._scale = self._grey(image)

    def step(
        self, image: np.ndarray, boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``boxes`` (xyxy, in the previous frame) moved to ``image``, and whether
        each move was measured: ``False`` where too few points tracked (the box
        is then returned where it was)."""
        grey, scale = self._grey(image)
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape or not len(boxes):
            return boxes, np.zeros(len(boxes), dtype=bool)
        moved = [self._move(prev, grey, box * scale) for box in boxes]
        ok = np.array([m is not None for m in moved], dtype=bool)
        pairs = zip(boxes, moved, strict=True)
        out = np.stack([box if m is None else m / scale for box, m in pairs])
        return out, ok

    def _grey(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        scale = min(1.0, self.max_side / max(grey.shape))
        if scale < 1.0:
            size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)
        return grey, scale

    def _move(
        self, prev: np.ndarray, grey: np.ndarray, box: np.ndarray
    ) -> np.ndarray | None:
        import cv2

        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        if w < 4 or h < 4:
            return None
        u = np.linspace(0.2, 0.8, GRID)
        gx, gy = np.meshgrid(x1 + u * w, y1 + u * h)
        p0 = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)[:, None]
        lk = {"winSize": (15, 15), "maxLevel": 2}
        p1, ok1, _ = cv2.calcOpticalFlowPyrLK(prev, grey, p0, None, **lk)
        back, ok2, _ = cv2.calcOpticalFlowPyrLK(grey, prev, p1, None, **lk)
        good = (
            (ok1.ravel() == 1)
            & (ok2.ravel() == 1)
            & (np.linalg.norm((back - p0)[:, 0], axis=1) < FB_TOLERANCE)
        )
        if good.sum() < MIN_POINTS:
            return None
        a, b = p0[good, 0], p1[good, 0]
        shift = np.median(b - a, axis=0)
        # Scale: how distances to the centroid grew, robust to a few bad points.
        da = np.linalg.norm(a - a.mean(axis=0), axis=1)
        db = np.linalg.norm(b - b.mean(axis=0), axis=1)
        keep = da > 1e-3
        zoom = float(np.median(db[keep] / da[keep])) if keep.any() else 1.0
        zoom = float(np.clip(zoom, 0.8, 1.25))
        cx, cy = (x1 + x2) / 2 + shift[0], (y1 + y2) / 2 + shift[1]
        half_w, half_h = w * zoom / 2, h * zoom / 2
        return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
