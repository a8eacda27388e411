"""Give faces in a video track ids that stay stable while the same face is on screen.

Why not a library tracker: supervision removed ``ByteTrack`` in 0.31 (deprecated
since 0.28); its successor, Roboflow's ``trackers``, requires ``opencv-python``, a
second OpenCV wheel beside the ``opencv-contrib-python-headless`` that retina-face
needs; norfair pins ``numpy<2``, which TensorFlow 2.21 cannot use. ByteTrack also
withholds a new track's first detection until it is confirmed, which would drop
face rows. Faces on screen are few and move little between sampled frames, so
optimal IoU matching (SciPy's Hungarian solver) with a time-based lost buffer is
what this needs, and it assigns an id to every detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .faces import Faces
from .registry import Registry


class Tracker:
    """The tracker contract: one frame's faces in, the same faces with ids out."""

    def update(self, faces: Faces, timestamp_s: float) -> Faces:
        raise NotImplementedError

    def follow(self, faces: Faces, timestamp_s: float) -> None:
        """Tracked faces carried between detections (same ids): update them."""

    def end_tracks(self) -> None:
        """End every live track (a shot cut): later faces get new ids, and ids
        are never reused within a video."""
        raise NotImplementedError


TRACKERS: Registry[Tracker] = Registry("tracker")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of ``(n, 4)`` and ``(m, 4)`` xyxy boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def best_matching(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the pairing with the largest total IoU.

    With one box on either side the best pairing is the largest entry, found
    directly: importing SciPy's solver costs 0.3-0.4 s of start-up, and a video
    with one face on screen never needs it.
    """
    if iou.shape[0] == 1 or iou.shape[1] == 1:
        r, c = np.unravel_index(np.argmax(iou), iou.shape)
        return np.array([r]), np.array([c])
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(-iou)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    last_seen: float


@TRACKERS.register("iou")
@dataclass
class IouTracker(Tracker):
    """Hungarian matching of boxes to live tracks by IoU.

    Args:
        iou_threshold: least IoU for a detection to continue a track.
        max_lost_s: how long a track may go unseen (seconds) and still be continued.
    """

    iou_threshold: float = 0.3
    max_lost_s: float = 1.0
    _tracks: list[_Track] = field(default_factory=list, init=False, repr=False)
    _next_id: int = field(default=0, init=False, repr=False)

    def end_tracks(self) -> None:
        self._tracks = []

    def follow(self, faces: Faces, timestamp_s: float) -> None:
        # A carried face is on screen as far as the output goes: it stays live.
        by_id = {t.track_id: t for t in self._tracks}
        for box, track_id in zip(faces.boxes, faces.track_ids, strict=True):
            if int(track_id) in by_id:
                by_id[int(track_id)].box = box
                by_id[int(track_id)].last_seen = timestamp_s

    def update(self, faces: Faces, timestamp_s: float) -> Faces:
        self._tracks = [
            t for t in self._tracks if timestamp_s - t.last_seen <= self.max_lost_s
        ]
        ids = np.full(len(faces), -1, dtype=np.int64)
        if len(faces) and self._tracks:
            live = np.stack([t.box for t in self._tracks])
            iou = iou_matrix(faces.boxes, live)
            rows, cols = best_matching(iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= self.iou_threshold:
                    ids[r] = self._tracks[c].track_id
                    self._tracks[c].box, self._tracks[c].last_seen = (
                        faces.boxes[r],
                        timestamp_s,
                    )
        for r in np.flatnonzero(ids < 0):
            ids[r] = self._next_id
            self._tracks.append(_Track(self._next_id, faces.boxes[r], timestamp_s))
            self._next_id += 1
        return Faces(faces.boxes, faces.scores, ids)


def create_tracker(name: str = "iou", **kwargs) -> Tracker:
    return TRACKERS.create(name, **kwargs)
