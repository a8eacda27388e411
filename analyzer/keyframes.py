"""Which frames the detector sees, and how faces are carried to the frames between.

Full detections run on keyframes (the first analyzed frame of each shot, then
every ``detect_interval_s``), in batches; optical flow carries tracked faces to
the other analyzed frames, and MTCNN's O-Net checks each carried box.
"""

from __future__ import annotations

import numpy as np

from .batcher import CropBatcher
from .config import BOX_CHECK_THRESHOLD
from .detectors import Refines
from .faces import Faces
from .motion import BoxFlow
from .runtime import Runtime
from .shots import ShotDetector
from .sources import Frame
from .tracking import create_tracker


def _detect(runtime: Runtime, images: list[np.ndarray]) -> list[Faces]:
    """Detect on frames downscaled to ``detect_max_side``; boxes in full-size
    pixels, faces under ``min_face`` pixels or ``min_score`` left out."""
    import cv2

    if not images:
        return []
    config = runtime.config
    limit = config.detect_max_side
    scale = min(1.0, limit / max(images[0].shape[:2])) if limit else 1.0
    if scale < 1.0:
        images = [
            cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            for im in images
        ]
    found = runtime.detector.detect(images)
    if scale < 1.0:
        found = [Faces(f.boxes / scale, f.scores) for f in found]
    if config.min_face or config.min_score:
        found = [_large_and_sure(f, config.min_face, config.min_score) for f in found]
    return found


def _large_and_sure(faces: Faces, min_face: int, min_score: float) -> Faces:
    sides = np.minimum(
        faces.boxes[:, 2] - faces.boxes[:, 0], faces.boxes[:, 3] - faces.boxes[:, 1]
    )
    return faces.select(
        np.flatnonzero((sides >= min_face) & (faces.scores >= min_score))
    )


class _ShotLog:
    """The ``shots/`` rows of one video, built as its analyzed frames go by."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows: list[list] = []  # shot, first, last, start_s, end_s, frames

    def add(self, shot: int, frame: Frame) -> None:
        t = np.nan if frame.timestamp_s is None else frame.timestamp_s
        if self.rows and self.rows[-1][0] == shot:
            row = self.rows[-1]
            row[2], row[4], row[5] = frame.index, t, row[5] + 1
        else:
            self.rows.append([shot, frame.index, frame.index, t, t, 1])

    def columns(self) -> dict[str, np.ndarray]:
        table = np.array(self.rows, dtype=np.float64).reshape(-1, 6)
        ints = table[:, [0, 1, 2, 5]].astype(np.int64)
        return {
            "source": np.full(len(table), self.source, dtype=object),
            "shot": ints[:, 0],
            "first_frame": ints[:, 1],
            "last_frame": ints[:, 2],
            "start_s": table[:, 3],
            "end_s": table[:, 4],
            "frames": ints[:, 3],
        }


class KeyframeScheduler:
    """Detect on keyframes, in batches, and carry tracked boxes to the frames between.

    A keyframe is an analyzed frame at least ``detect_interval_s`` after the last
    one, or the first analyzed frame of a shot (:mod:`analyzer.shots`): at a cut
    every track ends. Frames are buffered until ``detect_batch`` keyframes are
    waiting (or ``MAX_BUFFERED`` frames), so the detector always gets full
    batches: MTCNN is 2.5-5x faster per frame in batches of 8 than one at a time.
    A carried box is dropped when its optical flow fails or, with ``box_check``,
    when MTCNN's O-Net no longer sees a face in it.
    """

    MAX_BUFFERED = 64

    def __init__(
        self, runtime: Runtime, classify: CropBatcher, source: str, tracked: bool
    ) -> None:
        self.runtime, self.classify, self.tracked = runtime, classify, tracked
        config = runtime.config
        self.tracker = create_tracker(config.tracker)
        self.interval = config.detect_interval_s if tracked else 0.0
        self.buffer: list[tuple[Frame, int]] = []
        self.keys: list[Frame] = []
        self.last_key: float | None = None
        self.current = Faces.empty()
        self.shot = self.last_shot = 0
        self.track_ids: set[int] = set()
        self.shots = ShotDetector() if tracked else None
        self.shot_log = _ShotLog(source)
        self.flow = BoxFlow() if tracked and config.box_flow else None
        self.refine = (
            tracked
            and config.refine
            and isinstance(runtime.detector, Refines)
            and runtime.detector.can_refine
        )
        self.check = runtime.face_check if tracked and not self.refine else None

    def add(self, frame: Frame) -> None:
        t = frame.timestamp_s or 0.0
        shot = self.shots.update(frame.image) if self.shots else 0
        due = self.last_key is None or t - self.last_key >= self.interval - 1e-6
        if due or shot != self.last_shot:
            self.keys.append(frame)
            self.last_key = t
        self.last_shot = shot
        self.buffer.append((frame, shot))
        full = len(self.keys) >= self.runtime.config.detect_batch
        if full or len(self.buffer) >= self.MAX_BUFFERED:
            self.flush()

    def flush(self) -> None:
        found = _detect(self.runtime, [f.image for f in self.keys])
        by_index = {f.index: faces for f, faces in zip(self.keys, found, strict=True)}
        for frame, shot in self.buffer:
            if shot != self.shot:
                self.tracker.end_tracks()
                self.current, self.shot = Faces.empty(), shot
            box_source = "detected"
            if frame.index in by_index:
                self.current = self._identify(frame, by_index[frame.index])
                if self.flow:
                    self.flow.reset(frame.image)
            elif len(self.current):
                carried, box_source, lost = self._carry(frame)
                if lost:  # re-detect now rather than lose the face until a keyframe
                    carried = self._identify(
                        frame, _detect(self.runtime, [frame.image])[0]
                    )
                    box_source = "detected"
                    if self.flow:
                        self.flow.reset(frame.image)
                else:
                    self.tracker.follow(carried, frame.timestamp_s or 0.0)
                self.current = carried
            self.track_ids.update(self.current.track_ids.tolist())
            self.shot_log.add(shot, frame)
            self.classify.add(frame, self.current, shot, box_source)
        self.buffer, self.keys = [], []

    def restart(self) -> None:
        """End every track and detect on the next frame (a live source reopened)."""
        self.flush()
        self.tracker.end_tracks()
        self.current = Faces.empty()
        self.last_key = None

    def _carry(self, frame: Frame) -> tuple[Faces, str, bool]:
        """The current faces moved to ``frame``, how, and whether any was lost
        (its optical flow failed, or O-Net no longer sees a face in it). No
        detector scored these boxes, so their scores are NaN."""
        faces, box_source = self.current, "held"
        if self.flow:
            boxes, moved = self.flow.step(frame.image, faces.boxes)
            faces = Faces(boxes, faces.scores, faces.track_ids).select(moved)
            box_source = "flow"
        if self.refine:
            refined = self.runtime.detector.refine(frame.image, faces)
            return refined, "refined", len(refined) < len(self.current)
        if self.check and len(faces):
            scores = self.check(frame.image, faces.boxes)
            faces = faces.select(np.flatnonzero(scores >= BOX_CHECK_THRESHOLD))
        faces = Faces(faces.boxes, np.full(len(faces), np.nan), faces.track_ids)
        return faces, box_source, len(faces) < len(self.current)

    def _identify(self, frame: Frame, faces: Faces) -> Faces:
        if self.tracked:
            return self.tracker.update(faces, frame.timestamp_s or 0.0)
        return Faces(faces.boxes, faces.scores, np.arange(len(faces)))  # an image
