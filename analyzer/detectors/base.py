"""The detector contract: a batch of BGR frames in, one :class:`Faces` per frame out."""

from __future__ import annotations

from typing import Protocol

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


class DetectorUnavailable(RuntimeError):
    """A detector that cannot run here (missing weights or package)."""
