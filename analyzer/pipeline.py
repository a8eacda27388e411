"""Analyze one source: decode, detect, track, classify, write its Parquet part.

:func:`analyze_source` is the unit of work: a function of a source, the settings
and a :class:`~analyzer.runtime.Runtime` (the loaded models) that writes that
source's part and returns its ``sources.parquet`` row. Sources are independent,
so a distributed engine can map it over many machines; :func:`analyzer.batch.run`
is the local driver.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from .batcher import CropBatcher
from .keyframes import KeyframeScheduler
from .outdir import DiskFull, is_disk_full
from .prefetch import prefetch
from .records import PartWriter, SourceRow, part_name
from .runtime import Runtime
from .sources import Frame, Source, SourceError, VideoInfo, iter_video, read_image

logger = logging.getLogger(__name__)


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


def _analyze_frames(
    runtime: Runtime,
    part: PartWriter,
    source: Source,
    frames: Iterable[Frame],
    tracked: bool,
) -> set[int]:
    """Detect, track and classify every frame; returns the track ids seen.

    A video's shots are written to ``shots/``."""
    samples = None
    if tracked and runtime.embedder is not None:
        from .reid import TrackSamples

        samples = TrackSamples()
    with CropBatcher(runtime, part, source.name, samples) as classify:
        detections = KeyframeScheduler(runtime, classify, source.name, tracked)
        for frame in frames:
            detections.add(frame)
        detections.flush()
        classify.finish()
    if tracked and detections.shot_log.rows:
        part.add_shots(detections.shot_log.columns())
    if samples is not None:
        part.set_embeddings(
            samples.embed(runtime.embedder), runtime.config.reid_threshold
        )
    return detections.track_ids


def source_row(source: Source, **values) -> SourceRow:
    """The ``sources.parquet`` row of ``source`` with ``values`` filled in."""
    return SourceRow(
        source=source.name,
        kind=source.kind,
        path=source.path_text,
        path_bytes=source.path_bytes,
        **values,
    )


def analyze_source(
    source: Source, out: Path, runtime: Runtime, *, progress: bool = False
) -> SourceRow:
    """Analyze one image or video and write its part under ``out``.

    Returns:
        Its ``sources.parquet`` row: ``status`` is ``ok``, ``skipped`` or
        ``failed`` (with ``error``); a failed source leaves no part behind.
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
        with PartWriter(
            out,
            name,
            runtime.part_metadata(source),
            smooth_s=runtime.config.smooth_s,
            min_episode_s=runtime.config.min_episode_s,
            save_embeddings=runtime.config.save_embeddings,
        ) as part:
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
