"""Analyze sources: decode, detect, track, classify, write one Parquet part each.

:func:`analyze_source` is the unit of work: a function of a source, the settings
and a :class:`Runtime` (the loaded models) that writes that source's part and
returns its ``sources.parquet`` row. Sources are independent, so a distributed
engine can map it over many machines; :func:`run` is the local driver.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__
from .classifier import EmotionClassifier, default_model
from .config import AnalyzerConfig, settings_key
from .detectors import create_detector, resolve
from .faces import Faces
from .motion import BoxFlow
from .records import (
    FACES_DIR,
    SOURCES_FILE,
    PartWriter,
    face_rows,
    part_name,
    read_part_metadata,
    write_sources,
)
from .sources import (
    Frame,
    Source,
    SourceError,
    VideoInfo,
    find_sources,
    iter_video,
    prefetch,
    read_image,
)
from .tracking import create_tracker

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The loaded detector and classifier, built once and shared by all sources."""

    config: AnalyzerConfig
    detector: object
    classifier: EmotionClassifier
    detector_name: str
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = settings_key(
            self.config,
            model_sha256=self.classifier.sha256,
            detector=self.detector_name,
            version=__version__,
            detector_runtime=self.detector_runtime,
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
        return cls(config, detector, classifier, name)

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
            "crop_margin": self.classifier.info.crop_margin,
            "settings_key": self.key,
        }

    def part_metadata(self, source: Source) -> dict:
        return self.run_metadata() | {
            "source": source.name,
            "source_fingerprint": source.fingerprint,
        }


class _Classifier:
    """Collects analyzed frames and classifies their crops in batches across frames.

    Batches are classified and written on one worker thread while the caller
    detects and tracks the next frames (LiteRT and OpenCV release the GIL), at
    most ``IN_FLIGHT`` batches behind; rows are written in frame order, the same
    rows as classifying in line. On the 10x woman2 loop this took 5-13% off the
    whole run at 5 fps and 1-12% every frame (alternating runs; README,
    "Performance"). Use as a context manager: leaving it waits for the worker,
    so nothing writes to the part after.
    """

    IN_FLIGHT = 2

    def __init__(self, runtime: Runtime, part: PartWriter, source: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.runtime, self.part, self.source = runtime, part, source
        self.pending: list[tuple[Frame, Faces, list[np.ndarray]]] = []
        self.crops = 0
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="classifier")
        self._queued: list = []

    def __enter__(self) -> _Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def add(self, frame: Frame, faces: Faces) -> None:
        crops = self.runtime.classifier.crops(frame.image, faces.boxes)
        # Keep the crops, not the frame: memory stays flat however long the video.
        self.pending.append((Frame(frame.index, frame.timestamp_s, None), faces, crops))
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

    def _write(self, pending: list[tuple[Frame, Faces, list[np.ndarray]]]) -> None:
        crops = [c for _, _, cs in pending for c in cs]
        probs = self.runtime.classifier.predict(np.stack(crops)) if crops else None
        start = 0
        for frame, faces, frame_crops in pending:
            n = len(frame_crops)
            self.part.add_frame(self.source, frame.index, frame.timestamp_s, n)
            if n:
                self.part.add_faces(
                    face_rows(
                        self.source,
                        frame.index,
                        frame.timestamp_s,
                        faces,
                        probs[start : start + n],
                    )
                )
            start += n


def _frames_bar(
    source: Source, info: VideoInfo, frames: Iterator[Frame], enabled: bool
) -> Iterator[Frame]:
    """Wrap a frame stream in a progress bar counting decoded frames."""
    with tqdm(
        desc=source.name[-40:],
        unit="frame",
        leave=False,
        position=1,
        disable=not enabled,
    ) as bar:
        for frame in frames:
            bar.update(info.frames_total - bar.n)
            yield frame


def _detect(runtime: Runtime, images: list[np.ndarray]) -> list[Faces]:
    """Detect on frames downscaled to ``detect_max_side``; boxes in full-size pixels."""
    import cv2

    if not images:
        return []
    limit = runtime.config.detect_max_side
    scale = min(1.0, limit / max(images[0].shape[:2])) if limit else 1.0
    if scale < 1.0:
        images = [
            cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            for im in images
        ]
    found = runtime.detector.detect(images)
    if scale < 1.0:
        found = [Faces(f.boxes / scale, f.scores) for f in found]
    return found


class _Detections:
    """Detect on keyframes, in batches, and carry tracked boxes to the frames between.

    A keyframe is an analyzed frame at least ``detect_interval_s`` after the last
    one. Frames are buffered until ``detect_batch`` keyframes are waiting (or
    ``MAX_BUFFERED`` frames), so the detector always gets full batches: MTCNN is
    2.5-5x faster per frame in batches of 8 than one frame at a time.
    """

    MAX_BUFFERED = 64

    def __init__(self, runtime: Runtime, classify: _Classifier, tracked: bool) -> None:
        self.runtime, self.classify, self.tracked = runtime, classify, tracked
        self.tracker = create_tracker(runtime.config.tracker)
        self.interval = runtime.config.detect_interval_s if tracked else 0.0
        self.buffer: list[Frame] = []
        self.keys: list[Frame] = []
        self.last_key: float | None = None
        self.current = Faces.empty()
        self.track_ids: set[int] = set()
        self.flow = BoxFlow() if tracked and runtime.config.box_flow else None
        self.refine = (
            tracked
            and runtime.config.refine
            and getattr(runtime.detector, "can_refine", False)
        )

    def add(self, frame: Frame) -> None:
        t = frame.timestamp_s or 0.0
        if self.last_key is None or t - self.last_key >= self.interval - 1e-6:
            self.keys.append(frame)
            self.last_key = t
        self.buffer.append(frame)
        full = len(self.keys) >= self.runtime.config.detect_batch
        if full or len(self.buffer) >= self.MAX_BUFFERED:
            self.flush()

    def flush(self) -> None:
        found = _detect(self.runtime, [f.image for f in self.keys])
        by_index = {f.index: faces for f, faces in zip(self.keys, found, strict=True)}
        for frame in self.buffer:
            if frame.index in by_index:
                self.current = self._identify(frame, by_index[frame.index])
                if self.flow:
                    self.flow.reset(frame.image)
            elif self.flow and len(self.current):
                moved = self.flow.step(frame.image, self.current.boxes)
                self.current = Faces(moved, self.current.scores, self.current.track_ids)
                if self.refine:
                    self.current = self.runtime.detector.refine(
                        frame.image, self.current
                    )
                self.tracker.follow(self.current, frame.timestamp_s or 0.0)
            self.track_ids.update(self.current.track_ids.tolist())
            self.classify.add(frame, self.current)
        self.buffer, self.keys = [], []

    def _identify(self, frame: Frame, faces: Faces) -> Faces:
        if self.tracked:
            return self.tracker.update(faces, frame.timestamp_s or 0.0)
        return Faces(faces.boxes, faces.scores, np.arange(len(faces)))  # an image


def _analyze_frames(
    runtime: Runtime,
    part: PartWriter,
    source: Source,
    frames: Iterable[Frame],
    tracked: bool,
) -> set[int]:
    """Detect, track and classify every frame; returns the track ids seen."""
    with _Classifier(runtime, part, source.name) as classify:
        detections = _Detections(runtime, classify, tracked)
        for frame in frames:
            detections.add(frame)
        detections.flush()
        classify.finish()
    return detections.track_ids


def source_row(source: Source, **values) -> dict:
    """A ``sources.parquet`` row with every column present."""
    row = dict.fromkeys(
        (
            "error",
            "frames_total",
            "frames_analyzed",
            "fps",
            "duration_s",
            "width",
            "height",
            "faces",
            "tracks",
            "frames_with_faces",
            "decode_errors",
            "part",
        )
    )
    return (
        row
        | {
            "source": source.name,
            "kind": source.kind,
            "path": str(source.path.resolve()),
        }
        | values
    )


def analyze_source(
    source: Source, out: Path, runtime: Runtime, *, progress: bool = False
) -> dict:
    """Analyze one image or video and write its part under ``out``.

    Returns:
        Its ``sources.parquet`` row: ``status`` is ``ok`` or ``failed`` (with
        ``error``); a failed source leaves no part behind.
    """
    if source.kind not in ("image", "video"):
        return source_row(
            source,
            status="skipped",
            error=f"not an image or video ({source.path.suffix or 'no suffix'})",
        )
    name = part_name(source.name)
    try:
        with PartWriter(out, name, runtime.part_metadata(source)) as part:
            facts = _analyze_into(part, source, runtime, progress)
            row = source_row(
                source,
                status="ok",
                part=name,
                faces=part.faces,
                frames_analyzed=part.frame_count,
                **facts,
            )
            part.set_summary(row)
        return row
    except SourceError as exc:
        return source_row(source, status="failed", error=str(exc))
    except Exception as exc:  # one bad file must not end the batch
        logger.debug("unexpected error on %s", source.path, exc_info=True)
        return source_row(source, status="failed", error=f"{type(exc).__name__}: {exc}")


def _analyze_into(
    part: PartWriter, source: Source, runtime: Runtime, progress: bool
) -> dict:
    if source.kind == "image":
        image = read_image(source.path)
        frames = [Frame(0, None, image)]
        tracks = _analyze_frames(runtime, part, source, frames, tracked=False)
        h, w = image.shape[:2]
        info = VideoInfo(width=w, height=h, frames_total=1)
    else:
        info = VideoInfo()
        stream = iter_video(source.path, info, sample_fps=runtime.config.sample_fps)
        frames = _frames_bar(source, info, prefetch(stream), progress)
        tracks = _analyze_frames(runtime, part, source, frames, tracked=True)
        if info.decode_errors:
            logger.warning(
                "%s: the decoder rejected %d corrupt packet(s); frames predicted "
                "from them were analyzed as FFmpeg's error concealment left them",
                source.name,
                info.decode_errors,
            )
    return {
        "frames_total": info.frames_total,
        "fps": info.fps,
        "duration_s": info.duration_s,
        "width": info.width,
        "height": info.height,
        "tracks": len(tracks),
        "frames_with_faces": part.frames_with_faces,
        "decode_errors": info.decode_errors,
    }


def completed_row(source: Source, out: Path, runtime: Runtime) -> dict | None:
    """The stored row of a source already analyzed with the same settings, if any."""
    if source.kind not in ("image", "video"):
        return None
    meta = read_part_metadata(out / FACES_DIR / part_name(source.name))
    if (
        meta
        and meta.get("settings_key") == runtime.key
        and meta.get("source_fingerprint") == source.fingerprint
        and "source_row" in meta
    ):
        # The stored row, but where the file is now (the input may have moved).
        return (
            source_row(source)
            | meta["source_row"]
            | {"path": str(source.path.resolve())}
        )
    return None


@dataclass
class RunSummary:
    """What :func:`run` did: every source's row, and how many were reused."""

    rows: list[dict]
    reused: int = 0

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "failed"]


def run(
    inputs: list[Path],
    out: Path,
    runtime: Runtime,
    *,
    progress: bool = True,
    on_failure: Callable[[dict], None] | None = None,
) -> RunSummary:
    """Analyze every source under ``inputs`` into ``out``, resuming finished ones.

    A source's part is in place as soon as that source is done, so an interrupted
    run loses at most the source in progress and a rerun continues from there.
    While the run is going, ``run.json`` says ``"complete": false`` and there is
    no ``sources.parquet``; both are written when every source has been seen.
    """
    out.mkdir(parents=True, exist_ok=True)
    sources = find_sources(inputs, exclude=out)
    summary = RunSummary(rows=[])
    started = dt.datetime.now(dt.timezone.utc)
    (out / SOURCES_FILE).unlink(missing_ok=True)
    _write_run_facts(out, runtime, summary, started, complete=False)
    for source in tqdm(
        sources, desc="sources", unit="file", position=0, disable=not progress
    ):
        row = completed_row(source, out, runtime)
        if row is not None:
            summary.reused += 1
        else:
            row = analyze_source(source, out, runtime, progress=progress)
            if row["status"] == "failed" and on_failure:
                on_failure(row)
        summary.rows.append(row)
    write_sources(out, summary.rows)
    _write_run_facts(out, runtime, summary, started, complete=True)
    return summary


def _write_run_facts(
    out: Path,
    runtime: Runtime,
    summary: RunSummary,
    started: dt.datetime,
    *,
    complete: bool,
) -> None:
    rows = summary.rows
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    facts = runtime.run_metadata() | {
        "complete": complete,
        "started": started.isoformat(timespec="seconds"),
        "finished": now if complete else None,
        "sources": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "failed": len(summary.failed),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "reused": summary.reused,
        "faces": sum(r["faces"] or 0 for r in rows),
    }
    tmp = out / ".run.json.tmp"
    tmp.write_text(json.dumps(facts, indent=2) + "\n")
    tmp.replace(out / "run.json")
