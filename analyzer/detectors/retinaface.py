"""RetinaFace from the ``retina-face`` package (ResNet-50 backbone).

The package downloads its weights on first use into ``$DEEPFACE_HOME/.deepface/
weights`` (``~`` when unset). Offline, we check for the file first and stop with a
message that names it, instead of letting the download hang or fail obscurely.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emotion_contract.extras import MissingExtra, require

from ..faces import Faces
from .base import DetectorUnavailable

# retina-face picks TensorFlow, then PyTorch, then ONNX; each has its own file.
WEIGHT_FILES = {
    "tensorflow": "retinaface.h5",
    "pytorch": "retinaface.pth",
    "onnx": "retinaface.onnx",
}


def weights_path() -> Path:
    """Where retina-face looks for (and would download) its weights.

    Raises:
        MissingExtra: retina-face is not installed (the ``[retinaface]`` extra).
    """
    backend_utils = require(  # imports no framework
        "retinaface.commons.backend_utils",
        "retinaface",
        "--detector retinaface",
        package="retina-face",
    )

    home = Path(os.getenv("DEEPFACE_HOME", default=str(Path.home())))
    engine = backend_utils.get_backend_engine()
    return home / ".deepface" / "weights" / WEIGHT_FILES[engine]


def weights_available() -> bool:
    try:
        return weights_path().is_file()
    except Exception:  # retina-face missing or no engine: not available
        return False


class RetinaFaceDetector:
    """RetinaFace, one frame at a time (the package takes no batches).

    Args:
        threshold: minimum face score.
        allow_upscaling: let retina-face upscale small frames.
    """

    name = "retinaface"

    def __init__(self, *, threshold: float = 0.9, allow_upscaling: bool = True) -> None:
        try:
            path = weights_path()
        except MissingExtra as exc:
            raise DetectorUnavailable(str(exc)) from exc
        except Exception as exc:
            raise DetectorUnavailable(f"retina-face cannot run here: {exc}") from exc
        if not path.is_file():
            raise DetectorUnavailable(
                f"RetinaFace weights not found at {path}. retina-face downloads them "
                "on first use; offline, download the file on another machine (see the "
                "retina-face project's README) and place it there, set DEEPFACE_HOME "
                "to the folder that holds .deepface/weights/, or use --detector haar."
            )
        from retinaface import RetinaFace

        self._retinaface = RetinaFace
        self._model = RetinaFace.build_model()
        self.threshold, self.allow_upscaling = threshold, allow_upscaling

    def detect(self, frames: list[np.ndarray]) -> list[Faces]:
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> Faces:
        found = self._retinaface.detect_faces(
            frame,
            threshold=self.threshold,
            model=self._model,
            allow_upscaling=self.allow_upscaling,
        )
        if not isinstance(found, dict) or not found:
            return Faces.empty()
        boxes = [face["facial_area"] for face in found.values()]
        scores = [face["score"] for face in found.values()]
        return Faces(np.array(boxes, dtype=np.float32), np.array(scores))
