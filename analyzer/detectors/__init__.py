"""Face detector backends, chosen by name (``--detector``).

Each backend module imports its heavy dependencies only when a detector is built.
``auto`` picks RetinaFace when its weights are on disk, else the embedded default.
"""

from __future__ import annotations

from ..registry import Registry
from .base import ChecksFaces, Detector, DetectorUnavailable, Refines
from .haar import HaarDetector
from .mtcnn import MtcnnDetector
from .retinaface import RetinaFaceDetector, weights_available

DETECTORS: Registry[Detector] = Registry("detector")
DETECTORS.register("haar")(HaarDetector)
DETECTORS.register("mtcnn")(MtcnnDetector)
DETECTORS.register("retinaface")(RetinaFaceDetector)

# The offline default, chosen by measurement (docs/performance.md).
EMBEDDED_DEFAULT = "mtcnn"


def resolve(name: str) -> str:
    """Turn ``auto`` into a concrete backend name; other names pass through."""
    if name != "auto":
        return name
    return "retinaface" if weights_available() else EMBEDDED_DEFAULT


def create_detector(name: str = "auto", *, runtime: str = "auto", **kwargs) -> Detector:
    """Build the detector ``name`` (``auto`` resolved first).

    ``runtime`` goes to backends that run on more than one (``has_runtimes``:
    MTCNN); the others have one and ignore it.

    Raises:
        KeyError: unknown name (the message lists the valid ones).
        DetectorUnavailable: the backend cannot run here (e.g. missing weights).
    """
    name = resolve(name)
    if getattr(DETECTORS.factory(name), "has_runtimes", False):
        kwargs["runtime"] = runtime
    return DETECTORS.create(name, **kwargs)


__all__ = [
    "DETECTORS",
    "ChecksFaces",
    "Detector",
    "DetectorUnavailable",
    "EMBEDDED_DEFAULT",
    "Refines",
    "create_detector",
    "resolve",
]
