"""The detector contract: a batch of BGR frames in, one :class:`Faces` per frame out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..faces import Faces


class Detector(Protocol):
    """A face detector backend.

    ``name`` is stored in the output so every row says which detector found it.
    """

    name: str

    def detect(self, frames: list[np.ndarray]) -> list[Faces]:
        """Find faces in each ``(h, w, 3) uint8`` BGR frame."""
        ...


@runtime_checkable
class Refines(Protocol):
    """A detector that can re-place boxes carried to a frame with its last stage
    (``--refine``); ``can_refine`` says whether it can here."""

    can_refine: bool

    def refine(self, frame: np.ndarray, faces: Faces) -> Faces:
        """The faces re-placed; those no longer found are dropped, ids kept."""
        ...


@runtime_checkable
class ChecksFaces(Protocol):
    """A detector that can score whether given boxes still hold a face (the check
    on carried boxes); ``can_check`` says whether it can here."""

    can_check: bool

    def face_scores(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """A face probability for each ``(n, 4)`` box of ``frame``."""
        ...


class DetectorUnavailable(RuntimeError):
    """A detector that cannot run here (missing weights or package)."""
