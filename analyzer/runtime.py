"""The loaded models and the settings they run with, built once per run.

A :class:`Runtime` is what every source's analysis shares: the detector, the
classifier, the check on carried boxes, and the settings key that says whether a
stored part was made the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import __version__, timeline
from .classifier import EmotionClassifier, default_model
from .config import BOX_CHECK_THRESHOLD, AnalyzerConfig, settings_key
from .detectors import (
    ChecksFaces,
    Detector,
    DetectorUnavailable,
    create_detector,
    resolve,
)
from .sources import Source

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The loaded detector and classifier, built once and shared by all sources."""

    config: AnalyzerConfig
    detector: Detector
    classifier: EmotionClassifier
    detector_name: str
    # O-Net face probabilities of boxes in a frame: the check on carried boxes.
    face_check: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    # Face embeddings that link tracks into persons (analyzer.reid), or None.
    embedder: object | None = None
    reid_name: str | None = None
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = settings_key(
            self.config,
            model_sha256=self.classifier.sha256,
            detector=self.detector_name,
            version=__version__,
            detector_runtime=self.detector_runtime,
            reid=self.reid_name,
        )

    @classmethod
    def create(cls, config: AnalyzerConfig) -> Runtime:
        """Load the model and the detector, and put OpenCV on one thread.

        The pipeline keeps the cores busy with its own threads (decoder,
        classifier worker, LiteRT's pools); OpenCV's pool on top mostly spins.
        Alone, optical flow took 3.4 CPU-ms a step on OpenCV's threads against
        1.2 on one, in no less wall time; in the whole run every frame on the 10x
        loop, 31.9 against 33.5 CPU-s (two pairs), the same rows. The setting is
        process-wide.

        Raises:
            ModelUnavailable, DetectorUnavailable, KeyError: with a message for the
                user (missing model or weights, unknown backend name).
        """
        import cv2

        cv2.setNumThreads(1)
        classifier = EmotionClassifier(
            config.model or default_model(),
            runtime=config.classifier_runtime,
            batch_size=config.batch_size,
        )
        name = resolve(config.detector)
        detector = create_detector(name, runtime=config.detector_runtime)
        check = _face_check(detector) if config.box_check else None
        from .reid import create_embedder

        reid_name, embedder, why = create_embedder(config.reid)
        if why:
            logger.warning("re-identification is off (person stays null): %s", why)
        return cls(config, detector, classifier, name, check, embedder, reid_name)

    @property
    def detector_runtime(self) -> str | None:
        """``litert`` or ``keras`` for MTCNN; ``None`` for single-runtime backends."""
        return getattr(self.detector, "runtime", None)

    def run_metadata(self) -> dict:
        """What every part of this run shares: versions, models and settings."""
        return {
            "package_version": __version__,
            "model_name": self.classifier.name,
            "model_sha256": self.classifier.sha256,
            "detector": self.detector_name,
            "detector_runtime": self.detector_runtime,
            "tracker": self.config.tracker,
            "sampling": self.config.sampling,
            "sample_fps": self.config.sample_fps,
            "detect_interval_s": self.config.detect_interval_s,
            "detect_max_side": self.config.detect_max_side,
            "box_flow": self.config.box_flow,
            "refine": self.config.refine,
            "box_check": self.face_check is not None,
            "box_check_threshold": BOX_CHECK_THRESHOLD,
            "min_face": self.config.min_face,
            "min_score": self.config.min_score,
            "crop_margin": self.classifier.info.crop_margin,
            "temperature": self.classifier.info.temperature,
            "smoothing": {
                "method": timeline.METHOD,
                "half_life_s": self.config.smooth_s,
                "min_episode_s": self.config.min_episode_s,
            },
            "reid": self.reid_name,
            "reid_threshold": self.config.reid_threshold if self.reid_name else None,
            "settings_key": self.key,
        }

    def part_metadata(self, source: Source) -> dict:
        return self.run_metadata() | {
            "source": source.name,
            "source_fingerprint": source.fingerprint,
        }


def _face_check(detector) -> Callable | None:
    """The detector's own O-Net check, or MTCNN's on LiteRT for other detectors."""
    if isinstance(detector, ChecksFaces) and detector.can_check:
        return detector.face_scores
    try:
        mtcnn = create_detector("mtcnn", runtime="litert")
    except DetectorUnavailable as exc:
        logger.warning("carried boxes are not checked for faces: %s", exc)
        return None
    return mtcnn.face_scores
