"""Classify face crops in batches across frames, and write the rows in order."""

from __future__ import annotations

import numpy as np

from .faces import Faces
from .records import PartWriter, face_rows
from .runtime import Runtime
from .sources import Frame


class CropBatcher:
    """Collects analyzed frames and classifies their crops in batches across frames.

    Batches are classified and written on one worker thread while the caller
    detects and tracks the next frames (LiteRT and OpenCV release the GIL), at
    most ``IN_FLIGHT`` batches behind; rows are written in frame order, the same
    rows as classifying in line. On the 10x woman2 loop this took 5-13% off the
    whole run at 5 fps and 1-12% every frame (alternating runs;
    docs/performance.md). Use as a context manager: leaving it waits for the worker,
    so nothing writes to the part after.
    """

    IN_FLIGHT = 2

    def __init__(
        self, runtime: Runtime, part: PartWriter, source: str, samples=None
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.runtime, self.part, self.source = runtime, part, source
        self.samples = samples  # analyzer.reid.TrackSamples: faces to embed
        self.pending: list[tuple[Frame, Faces, list[np.ndarray], int, str]] = []
        self.crops = 0
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="classifier")
        self._queued: list = []

    def __enter__(self) -> CropBatcher:
        return self

    def __exit__(self, *exc) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def add(self, frame: Frame, faces: Faces, shot: int, box_source: str) -> None:
        crops = self.runtime.classifier.crops(frame.image, faces.boxes)
        if self.samples is not None and box_source == "detected" and len(faces):
            self.samples.offer(frame.image, frame.timestamp_s, faces)
        # Keep the crops, not the frame: memory stays flat however long the video.
        stub = Frame(frame.index, frame.timestamp_s, None)
        self.pending.append((stub, faces, crops, shot, box_source))
        self.crops += len(crops)
        if self.crops >= self.runtime.config.batch_size:
            self.flush()

    def flush(self) -> None:
        """Hand the pending frames to the worker; re-raise the worker's errors."""
        if self.pending:
            self._queued.append(self._worker.submit(self._write, self.pending))
            self.pending, self.crops = [], 0
        while len(self._queued) > self.IN_FLIGHT:
            self._queued.pop(0).result()

    def finish(self) -> None:
        """Classify and write everything added; re-raise the worker's errors."""
        self.flush()
        while self._queued:
            self._queued.pop(0).result()

    def _write(self, pending: list) -> None:
        crops = [c for _, _, cs, _, _ in pending for c in cs]
        probs = self.runtime.classifier.predict(np.stack(crops)) if crops else None
        start = 0
        for frame, faces, frame_crops, shot, box_source in pending:
            n = len(frame_crops)
            self.part.add_frame(self.source, frame.index, frame.timestamp_s, n, shot)
            if n:
                self.part.add_faces(
                    face_rows(
                        self.source,
                        frame.index,
                        frame.timestamp_s,
                        faces,
                        probs[start : start + n],
                        shot=shot,
                        box_source=box_source,
                    )
                )
            start += n
