"""The analyzer's settings, frozen: one value describes one run's choices."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_SAMPLE_FPS = 5.0
# Full detections (which find new faces) once a second; tracked faces are carried
# by optical flow on the analyzed frames in between (docs/performance.md).
DEFAULT_DETECT_INTERVAL_S = 1.0
# A carried box is kept only while MTCNN's O-Net gives it at least this face
# probability (docs/shots.md).
BOX_CHECK_THRESHOLD = 0.5
# Faces with a shorter side under this many pixels are left out: on FER2013
# validation faces shrunk to 32 px the shipped model loses 3 points of accuracy,
# at 24 px 10, at 20 px 17 (docs/shots.md).
DEFAULT_MIN_FACE = 32
# The smoother's half-life and the shortest episode, in seconds (analyzer.timeline;
# chosen on a video of FER2013 validation faces, docs/timeline.md).
DEFAULT_SMOOTH_S = 0.25
DEFAULT_MIN_EPISODE_S = 0.5
# Tracks within this distance of each other may be one person (analyzer.reid;
# chosen on cuts.mp4 and copies of it, docs/reid.md).
DEFAULT_REID_THRESHOLD = 0.5
LINK_NEEDS_EMBEDDINGS = (
    "--link-across-sources needs --save-embeddings: videos are linked by the track "
    "vectors kept in OUT/embeddings/ (biometric data, so only when asked), which "
    "also links videos analyzed by an earlier run"
)


@dataclass(frozen=True)
class AnalyzerConfig:
    """What to run and how.

    Attributes:
        model: the ``.keras`` model; ``None`` means the shipped default.
        detector: a detector backend name, or ``auto``.
        tracker: a tracker backend name.
        sample_fps: frames per second to analyze; ``None`` analyzes every frame.
        batch_size: face crops per classifier call.
        detect_batch: frames per detector call.
        detect_interval_s: run the full detector on an analyzed frame only when
            this long has passed since the last detection; frames in between carry
            the tracked faces (``box_flow``, ``refine``). 0 detects on every
            analyzed frame.
        box_flow: between keyframes, move the tracked boxes with optical flow
            (:mod:`analyzer.motion`) instead of holding them where they were.
        refine: on those frames, also re-place each moved box with the detector's
            last stage where it has one (MTCNN's O-Net on LiteRT), and drop faces
            it no longer finds. Off by default: on woman2.mp4 it agrees less
            with the slow reference than the flowed boxes do (docs/performance.md).
        box_check: on those frames, drop a carried box that MTCNN's O-Net no
            longer scores as a face (``BOX_CHECK_THRESHOLD``), so a track ends
            within one analyzed frame of its face leaving.
        min_face: drop detections whose shorter side is under this many pixels
            (full-frame pixels).
        min_score: drop detections scored under this by the detector.
        detect_max_side: frames whose longer side exceeds this are downscaled for
            detection (boxes are mapped back); 0 never downscales.
        classifier_runtime: ``keras``, ``litert`` (a verified LiteRT copy of the
            Keras model) or ``auto`` (LiteRT when installed).
        detector_runtime: the same choice for MTCNN (the ``mtcnn`` package on
            TensorFlow, or LiteRT copies of its networks); other detectors have one.
        smooth_s: half-life of the smoother over each track's probabilities, in
            seconds (0: the smoothed columns equal the raw ones).
        min_episode_s: runs of one smoothed emotion shorter than this merge into a
            neighbouring episode.
        reid: the embedding backend that links a source's tracks into persons
            (``dlib``), ``none``, or ``auto`` (``dlib`` when the ``[reid]`` extra
            is installed, else none).
        reid_threshold: tracks further apart than this are never one person.
        save_embeddings: also write each track's face vector to
            ``OUT/embeddings/`` (biometric data: off unless asked).
        link_across_sources: one person id across all the run's sources (a
            participant recorded in several files), linked from the vectors in
            ``OUT/embeddings/``, so it needs ``save_embeddings``.
    """

    model: Path | None = None
    detector: str = "auto"
    tracker: str = "iou"
    sample_fps: float | None = DEFAULT_SAMPLE_FPS
    batch_size: int = 64
    detect_batch: int = 8
    detect_interval_s: float = DEFAULT_DETECT_INTERVAL_S
    detect_max_side: int = 640
    box_flow: bool = True
    refine: bool = False
    box_check: bool = True
    min_face: int = DEFAULT_MIN_FACE
    min_score: float = 0.0
    classifier_runtime: str = "auto"
    detector_runtime: str = "auto"
    smooth_s: float = DEFAULT_SMOOTH_S
    min_episode_s: float = DEFAULT_MIN_EPISODE_S
    reid: str = "auto"
    reid_threshold: float = DEFAULT_REID_THRESHOLD
    save_embeddings: bool = False
    link_across_sources: bool = False

    def __post_init__(self) -> None:
        if self.sample_fps is not None and self.sample_fps <= 0:
            raise ValueError("sample_fps must be positive (or None for every frame)")
        if self.batch_size < 1 or self.detect_batch < 1:
            raise ValueError("batch sizes must be at least 1")
        if not (self.smooth_s >= 0 and self.min_episode_s >= 0):  # NaN fails too
            raise ValueError("--smooth and --min-episode must be 0 or more seconds")
        if not self.reid_threshold > 0:
            raise ValueError("--reid-threshold must be positive")
        if self.link_across_sources and not self.save_embeddings:
            raise ValueError(LINK_NEEDS_EMBEDDINGS)

    @property
    def sampling(self) -> str:
        return "every-frame" if self.sample_fps is None else f"{self.sample_fps:g} fps"


def settings_key(
    config: AnalyzerConfig,
    *,
    model_sha256: str,
    detector: str,
    version: str,
    detector_runtime: str | None = None,
    reid: str | None = None,
) -> str:
    """A hash of everything that changes a source's rows: equal keys, same output.

    Batch sizes and the classifier runtime are left out: they change speed, not
    results (the LiteRT copy matches the Keras model to 1e-4). The detector's
    runtime, as resolved, stays in: MTCNN's two runtimes place boxes a few pixels
    apart.
    """
    facts = asdict(config) | {
        "model": model_sha256,
        "detector": detector,
        "detector_runtime": detector_runtime,
        "version": version,
        "reid": reid,  # as resolved: auto means dlib on one machine, none on another
    }
    # Linking across sources relabels finished parts at the end of a run instead of
    # analyzing them again (analyzer.batch.assign_persons).
    speed_only = ("batch_size", "detect_batch", "classifier_runtime")
    for key in (*speed_only, "link_across_sources"):
        facts.pop(key)
    return hashlib.sha256(
        json.dumps(facts, sort_keys=True, default=str).encode()
    ).hexdigest()[:20]
