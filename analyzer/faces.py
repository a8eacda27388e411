"""The record that flows through the pipeline: one frame's faces as parallel arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Faces:
    """The faces found in one frame.

    Attributes:
        boxes: ``(n, 4) float32`` pixel boxes ``x1, y1, x2, y2``.
        scores: ``(n,) float32`` detector confidences in ``[0, 1]``.
        track_ids: ``(n,) int64``; ``-1`` until a tracker assigns them.

    Example:
        >>> Faces(np.array([[0, 0, 10, 10]]), np.array([0.9]))
        Faces(n=1)
    """

    boxes: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        n = len(self.boxes)
        if self.track_ids is None:
            self.track_ids = np.full(n, -1, dtype=np.int64)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        if len(self.scores) != n or len(self.track_ids) != n:
            raise ValueError(
                f"boxes, scores and track_ids disagree: {n}, {len(self.scores)}, "
                f"{len(self.track_ids)}"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    def __repr__(self) -> str:
        return f"Faces(n={len(self)})"

    @classmethod
    def empty(cls) -> Faces:
        return cls(np.zeros((0, 4)), np.zeros(0))

    def select(self, index: np.ndarray) -> Faces:
        return Faces(self.boxes[index], self.scores[index], self.track_ids[index])
