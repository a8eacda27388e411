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
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__
from .classifier import EmotionClassifier, default_model
from .config import BOX_CHECK_THRESHOLD, AnalyzerConfig, settings_key
from .detectors import DetectorUnavailable, create_detector, resolve
from .faces import Faces
from .motion import BoxFlow
from .outdir import DiskFull, check_free_space, is_disk_full
from .records import (
    FACES_DIR,
    FRAMES_DIR,
    SHOTS_DIR,
    SOURCES_FILE,
    PartWriter,
    face_rows,
    part_name,
    read_part_metadata,
    write_sources,
)
from .shots import ShotDetector
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
    # O-Net face probabilities of boxes in a frame: the check on carried boxes.
    face_check: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
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
        check = _face_check(detector) if config.box_check else None
        return cls(config, detector, classifier, name, check)

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
            "settings_key": self.key,
        }

    def part_metadata(self, source: Source) -> dict:
        return self.run_metadata() | {
            "source": source.name,
            "source_fingerprint": source.fingerprint,
        }


def _face_check(detector) -> Callable | None:
    """The detector's own O-Net check, or MTCNN's on LiteRT for other detectors."""
    if getattr(detector, "can_check", False):
        return detector.face_scores
    try:
        mtcnn = create_detector("mtcnn", runtime="litert")
    except DetectorUnavailable as exc:
        logger.warning("carried boxes are not checked for faces: %s", exc)
        return None
    return mtcnn.face_scores


class _Classifier:
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

    def __init__(self, runtime: Runtime, part: PartWriter, source: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.runtime, self.part, self.source = runtime, part, source
        self.pending: list[tuple[Frame, Faces, list[np.ndarray], int, str]] = []
        self.crops = 0
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="classifier")
        self._queued: list = []

    def __enter__(self) -> _Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    def add(self, frame: Frame, faces: Faces, shot: int, box_source: str) -> None:
        crops = self.runtime.classifier.crops(frame.image, faces.boxes)
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


def expected_frames(info: VideoInfo, sample_fps: float | None) -> int | None:
    """How many frames a video will analyze, from its container's facts (an
    estimate for the progress bar; ``None`` when the container does not say)."""
    if sample_fps is None:
        if info.frames_declared:
            return info.frames_declared
        return (
            round(info.duration_s * info.fps) if info.duration_s and info.fps else None
        )
    if info.duration_s:
        return max(1, math.ceil(info.duration_s * sample_fps))
    if info.frames_declared and info.fps:
        return max(1, math.ceil(info.frames_declared / info.fps * sample_fps))
    return None


def _frames_bar(
    source: Source,
    info: VideoInfo,
    frames: Iterator[Frame],
    sample_fps: float | None,
    enabled: bool,
) -> Iterator[Frame]:
    """Wrap a frame stream in a progress bar over analyzed frames, with a total
    (and so a percentage and an ETA) once the container has been read."""
    with tqdm(
        desc=source.name[-40:],
        unit="frame",
        leave=False,
        position=1,
        disable=not enabled,
    ) as bar:
        for frame in frames:
            if bar.total is None:
                bar.total = expected_frames(info, sample_fps)
            if bar.total is not None and bar.n >= bar.total:
                bar.total = bar.n + 1  # the container undercounted
            bar.update(1)
            yield frame


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


class _Detections:
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
        self, runtime: Runtime, classify: _Classifier, source: str, tracked: bool
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
            tracked and config.refine and getattr(runtime.detector, "can_refine", False)
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


def _analyze_frames(
    runtime: Runtime,
    part: PartWriter,
    source: Source,
    frames: Iterable[Frame],
    tracked: bool,
) -> set[int]:
    """Detect, track and classify every frame; returns the track ids seen.

    A video's shots are written to ``shots/``."""
    with _Classifier(runtime, part, source.name) as classify:
        detections = _Detections(runtime, classify, source.name, tracked)
        for frame in frames:
            detections.add(frame)
        detections.flush()
        classify.finish()
    if tracked and detections.shot_log.rows:
        part.add_shots(detections.shot_log.columns())
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
            "rotation",
            "part",
        )
    )
    return (
        row
        | {
            "source": source.name,
            "kind": source.kind,
            "path": source.path_text,
            "path_bytes": source.path_bytes,
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
    if source.problem:
        return source_row(source, status=source.problem_status, error=source.problem)
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
        if is_disk_full(exc):  # ... but a full disk ends it: every source would fail
            raise DiskFull(
                f"the disk filled up while writing {source.name} (nothing of it was "
                "kept); free some space and rerun the same command to continue"
            ) from exc
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
        frames = _frames_bar(
            source, info, prefetch(stream), runtime.config.sample_fps, progress
        )
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
        "rotation": info.rotation if source.kind == "video" else None,
    }


def completed_row(source: Source, out: Path, runtime: Runtime) -> dict | None:
    """The stored row of a source already analyzed with the same settings, if any."""
    return reuse(source, out, runtime)[0]


def reuse(source: Source, out: Path, runtime: Runtime) -> tuple[dict | None, str]:
    """The stored row of a source already analyzed with the same settings, or
    ``None`` and why it must be analyzed (again)."""
    if source.kind not in ("image", "video") or source.problem:
        return None, ""
    name = part_name(source.name)
    meta = read_part_metadata(out / FACES_DIR / name)
    if not meta or "source_row" not in meta:
        return None, "new" if meta is None and not _any_part(
            out, name
        ) else "part missing"
    if meta.get("settings_key") != runtime.key:
        return None, "settings changed"
    if meta.get("source_fingerprint") != source.fingerprint:
        return None, "file changed"
    stored = meta["source_row"]
    wanted = [FRAMES_DIR] + (
        [SHOTS_DIR] if source.kind == "video" and stored.get("frames_analyzed") else []
    )
    if not all((out / d / name).is_file() for d in wanted):
        return None, "part missing"
    # The stored row, but where the file is now (the input may have moved).
    row = source_row(source) | stored
    return row | {"path": source.path_text, "path_bytes": source.path_bytes}, ""


def _any_part(out: Path, name: str) -> bool:
    return any((out / d / name).exists() for d in (FRAMES_DIR, SHOTS_DIR))


def prune_parts(out: Path, rows: list[dict]) -> int:
    """Remove every part that is not an ``ok`` source of this run (inputs since
    deleted, emptied or failed, or earlier runs' leftovers); returns how many."""
    keep = {r["part"] for r in rows if r["status"] == "ok" and r.get("part")}
    removed = 0
    for d in (FACES_DIR, FRAMES_DIR, SHOTS_DIR):
        for path in (out / d).glob("*.parquet") if (out / d).is_dir() else []:
            if path.name not in keep:
                path.unlink()
                removed += 1
    return removed


@dataclass
class RunSummary:
    """What :func:`run` did: every source's row, and how many were reused."""

    rows: list[dict]
    reused: int = 0
    # Sources analyzed again although a part of theirs was there, by reason.
    reanalyzed: dict[str, int] = field(default_factory=dict)
    pruned: int = 0  # parts removed that belonged to no ok source of this run

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

    Raises:
        DiskFull: free space ran low before a source, or the disk filled up while
            one was written (its temporary files are removed); the run stops.
    """
    out.mkdir(parents=True, exist_ok=True)
    check_free_space(out)
    _remove_temporaries(out)
    sources = find_sources(inputs, exclude=out)
    summary = RunSummary(rows=[])
    started = dt.datetime.now(dt.timezone.utc)
    (out / SOURCES_FILE).unlink(missing_ok=True)
    _write_run_facts(out, runtime, summary, started, complete=False)
    for source in tqdm(
        sources, desc="sources", unit="file", position=0, disable=not progress
    ):
        check_free_space(out)
        row, why = reuse(source, out, runtime)
        if row is not None:
            summary.reused += 1
        else:
            if why and why != "new":
                summary.reanalyzed[why] = summary.reanalyzed.get(why, 0) + 1
            row = analyze_source(source, out, runtime, progress=progress)
            if row["status"] == "failed" and on_failure:
                on_failure(row)
        summary.rows.append(row)
    write_sources(out, summary.rows)
    summary.pruned = prune_parts(out, summary.rows)
    _write_run_facts(out, runtime, summary, started, complete=True)
    return summary


def _remove_temporaries(out: Path) -> None:
    """Temporary parts a killed run left behind (the caller holds the lock, so
    no other run is writing them)."""
    for d in (FACES_DIR, FRAMES_DIR, SHOTS_DIR):
        for path in (out / d).glob(".*.tmp") if (out / d).is_dir() else []:
            path.unlink(missing_ok=True)


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
        "reanalyzed": summary.reanalyzed,
        "pruned_parts": summary.pruned,
        "faces": sum(r["faces"] or 0 for r in rows),
    }
    tmp = out / ".run.json.tmp"
    tmp.write_text(json.dumps(facts, indent=2) + "\n")
    tmp.replace(out / "run.json")
