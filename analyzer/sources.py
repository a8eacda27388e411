"""Stream the frames of the media that :mod:`analyzer.walk` finds.

Videos are decoded with PyAV, which gives each frame its presentation time from the
container (``pts * time_base``), so timestamps stay right for variable frame rates
and B-frames. Frames are streamed one at a time: memory stays flat however long the
video is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_contract.frames import upright, upright_turns

from .walk import (  # noqa: F401  (the walking half of "sources", re-exported)
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    Source,
    find_sources,
    kind_of,
)

logger = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A file that cannot be decoded; the message says why."""


@dataclass
class VideoInfo:
    """What the container says about a video, completed while decoding."""

    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    frames_total: int = 0
    frames_declared: int = 0  # what the container's header says, 0 if unknown
    duration_declared: float | None = None  # the header's duration, if it has one
    decode_errors: int = 0  # packets the decoder rejected as corrupt (skipped)
    rotation: int = 0  # degrees counter-clockwise the picture is turned for display


@dataclass(frozen=True)
class Frame:
    """A decoded frame: ``image`` is ``(h, w, 3) uint8`` BGR."""

    index: int
    timestamp_s: float | None
    image: np.ndarray


def read_bytes(path: Path, limit: int = -1) -> np.ndarray:
    """A file's bytes (the first ``limit``, or all) as ``uint8``.

    Raises:
        SourceError: the file cannot be read (permissions, I/O error).
    """
    try:
        with open(path, "rb") as f:  # open() copes with non-ASCII names, cv2 doesn't
            return np.frombuffer(f.read(limit), dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from exc


def read_image(path: Path) -> np.ndarray:
    """Decode an image as BGR (EXIF orientation applied).

    Raises:
        SourceError: the file is empty, unreadable or not a decodable image.
    """
    import cv2

    data = read_bytes(path)
    if data.size == 0:
        raise SourceError("file is empty (0 bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError("not a decodable image (corrupt or truncated)")
    return image


def iter_video(
    path: Path, info: VideoInfo, *, sample_fps: float | None
) -> Iterator[Frame]:
    """Stream a video's frames in presentation order, sampled to ``sample_fps``.

    Only sampled frames are converted to arrays, and frames that cannot be sampled
    and that no other frame is predicted from are not decoded at all
    (:class:`_Decoder`). ``info`` is filled in as decoding goes: ``frames_total``
    counts every frame, skipped or not. With ``sample_fps=None`` every frame is
    decoded and yielded.

    Raises:
        SourceError: the file cannot be opened or decoding fails part way.
    """
    import av

    if read_bytes(path, 1).size == 0:
        raise SourceError("file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        # FFmpeg's message without the path, which the sources table already has.
        raise SourceError(
            f"cannot open video: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    with container:
        if not container.streams.video:
            raise SourceError("file has no video stream")
        stream = container.streams.video[0]
        _describe(container, stream, info)
        stream.thread_type = decoder_threading(info, sample_fps)
        yield from _decode(container, stream, info, sample_fps)


# Frames up to this many pixels are decoded on one thread when sampling.
SINGLE_THREAD_PIXELS = 1280 * 720


def decoder_threading(info: VideoInfo, sample_fps: float | None) -> str:
    """FFmpeg's ``thread_type`` for this video: ``AUTO`` (frame and slice threads)
    or ``NONE``.

    The decoder runs on its own thread beside the analysis, on the same cores.
    When sampling (1 frame in 6 at 5 fps from 30) it is not what the run waits
    for, and FFmpeg's frame threads cost more than they save: on the 10x woman2
    loop (596x336) at 5 fps, decoding took 2.2 CPU-s on one thread against 3.1
    on FFmpeg's three (docs/performance.md). Every frame, or frames larger
    than 720p, keep the threads (every frame at 720p: 2-10% faster with them).
    """
    if sample_fps is None or not info.width or not info.height:
        return "AUTO"
    return "NONE" if info.width * info.height <= SINGLE_THREAD_PIXELS else "AUTO"


def _describe(container, stream, info: VideoInfo) -> None:
    rate = stream.average_rate or stream.guessed_rate
    info.fps = float(rate) if rate else None
    info.width, info.height = stream.codec_context.width, stream.codec_context.height
    info.frames_declared = int(stream.frames or 0)
    if stream.duration is not None and stream.time_base is not None:
        info.duration_s = float(stream.duration * stream.time_base)
    info.duration_declared = info.duration_s
    if info.duration_declared is None and container.duration:
        info.duration_declared = container.duration / 1e6  # microseconds (MKV)


def _upright(image: np.ndarray, rotation: float, info: VideoInfo) -> np.ndarray:
    """The picture as it is meant to be shown (phones store it sideways with a
    display rotation); ``info`` records the rotation and the upright size."""
    turns = upright_turns(rotation)
    if turns:
        image = upright(image, rotation)
        if info.rotation != turns * 90:
            info.rotation = turns * 90
            info.height, info.width = image.shape[:2]
    return image


class BgrConverter:
    """Decoded frames to ``(h, w, 3) uint8`` BGR arrays, one swscale context reused.

    ``frame.to_ndarray(format="bgr24")`` makes a new scaler for every frame, and
    since PyAV 17 that scaler starts its own threads (``threads=0``, automatic):
    0.8 ms a frame on a 596x336 video here, against 0.13 ms for one context on
    one thread, with the same pixels (docs/performance.md).
    """

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="bgr24", threads=1).to_ndarray()


def _decode(container, stream, info: VideoInfo, sample_fps: float | None):
    import av

    start = stream.start_time or 0
    last_t, last_bin, index = -1.0, -1, -1
    decoded = _Decoder(container, stream, sample_fps, start)
    to_bgr = BgrConverter()
    try:
        for index, frame in decoded:
            if decoded.by_count and info.fps:
                t = index / info.fps
            else:
                t = _timestamp(frame, stream, start, index, info.fps)
            t = max(t, last_t)  # presentation times never go back; guard bad files
            last_t = t
            info.frames_total = index + 1
            if sample_fps is not None:
                sample_bin = _sample_bin(t, sample_fps)
                if sample_bin <= last_bin:
                    continue
                last_bin = sample_bin
            yield Frame(index, t, _upright(to_bgr(frame), frame.rotation, info))
    except av.error.FFmpegError as exc:
        raise SourceError(f"decoding failed after frame {index}: {exc}") from exc
    if index < 0:
        raise SourceError("video holds no decodable frame")
    info.frames_total = max(info.frames_total, decoded.total)
    info.decode_errors = decoded.errors
    if info.frames_declared and info.frames_total < 0.98 * info.frames_declared - 1:
        raise SourceError(
            f"truncated: decoded {info.frames_total} of the {info.frames_declared} "
            "frames its header declares"
        )
    declared, fps = info.duration_declared, info.fps
    if not info.frames_declared and declared and fps:
        # No frame count in the header (MKV, WebM): compare durations instead.
        decoded_s = last_t + 1.0 / fps
        # Frames skipped undecoded at the end (sampling) may hide one sample bin.
        slack = 2.0 / fps + (1.0 / sample_fps if sample_fps else 0.0)
        if decoded_s < 0.98 * declared - slack:
            raise SourceError(
                f"truncated: decoded {decoded_s:.2f} s of the {declared:.2f} s its "
                "header declares"
            )
    if decoded.errors > max(1, MAX_CORRUPT_SHARE * decoded.packets):
        raise SourceError(
            f"corrupt: the decoder rejected {decoded.errors} of "
            f"{decoded.packets} packets"
        )
    if info.duration_s is None and info.fps:
        info.duration_s = last_t + 1.0 / info.fps


# More rejected packets than this share (and more than one) fail the video.
MAX_CORRUPT_SHARE = 0.02


class _Decoder:
    """A stream's frames in presentation order, each with its index among all frames.

    A frame's index is the rank of its timestamp among all packets' so far, so a
    frame the codec did not output still takes its place. Two reasons it may not:

    - With ``sample_fps``, a packet whose sampling bin already holds a frame with
      an earlier timestamp can never be sampled (the first frame of each bin is),
      so the codec is told to skip it if nothing else is predicted from it
      (FFmpeg's ``skip_frame = NONREF``: B-frames, typically). The frames sampled
      are the same; decoding costs less.
    - A packet the codec rejects as corrupt (``InvalidDataError``) is counted in
      ``errors`` and decoding goes on: H.264 conceals a damaged frame in the
      frames predicted from it, and one glitch must not fail an hour of video.
      The caller decides how many are too many.

    ``total`` (frames) and ``packets`` are final once iteration has finished.
    """

    def __init__(self, container, stream, sample_fps: float | None, start: int):
        self.container, self.stream = container, stream
        self.sample_fps, self.start = sample_fps, start
        self.total = self.packets = self.errors = 0
        # AVI stores no presentation times: its packets are stamped in decode
        # order, so with B-frames frame timestamps come out shuffled. Its frames
        # are counted in the decoder's (display) order and timed by the frame rate.
        self.by_count = container.format.name == "avi"

    def _packets(self):
        """The stream's packets, with MPEG-4 Part 2's "packed B-frames" (DivX and
        Xvid in AVI: a P- and a B-frame in one packet, then a placeholder) split
        by FFmpeg's ``mpeg4_unpack_bframes``, so every frame has its own packet."""
        packets = self.container.demux(self.stream)
        if self.stream.codec_context.name != "mpeg4":
            yield from packets
            return
        import av

        unpack = av.BitStreamFilterContext("mpeg4_unpack_bframes", self.stream)
        for packet in packets:
            last = not packet.size  # asked first: the filter takes the packet's data
            yield from (p for p in unpack.filter(None if last else packet) if p.size)
            if last:
                yield packet  # the decoder's flush

    def __iter__(self):
        import heapq

        import av

        ctx = self.stream.codec_context
        skipping = self.sample_fps is not None and self.stream.time_base is not None
        skipping = skipping and not self.by_count
        ranking = not self.by_count  # indices from packet timestamps, if they line up
        sent: list[int] = []  # heap: timestamps of packets not yet output or skipped
        first_in_bin: dict[int, int] = {}
        for packet in self._packets():
            if packet.size:
                self.packets += 1
                if packet.pts is None:
                    # No timestamps to reason with: decode everything, count frames.
                    ranking = skipping = False
                    sent, ctx.skip_frame = [], "DEFAULT"
                if ranking:
                    heapq.heappush(sent, packet.pts)
            if skipping and packet.size:
                t = _timestamp(packet, self.stream, self.start, 0, None)
                b = _sample_bin(t, self.sample_fps)
                first = min(first_in_bin.get(b, packet.pts), packet.pts)
                first_in_bin[b] = first
                ctx.skip_frame = "NONREF" if packet.pts > first else "DEFAULT"
                if len(first_in_bin) > 64:
                    for old in [k for k in first_in_bin if k < b - 8]:
                        del first_in_bin[old]
            elif not packet.size:
                ctx.skip_frame = "DEFAULT"  # the final flush
            try:
                frames = ctx.decode(packet)
            except av.error.InvalidDataError:
                self.errors += 1
                continue
            for frame in frames:
                if ranking and frame.pts not in sent:
                    # A timestamp no packet had (the codec re-stamped frames): stop
                    # skipping and from here on count frames as they come.
                    ranking = skipping = False
                    sent, ctx.skip_frame = [], "DEFAULT"
                while sent and sent[0] < frame.pts:
                    heapq.heappop(sent)  # skipped or rejected: counted, not shown
                    self.total += 1
                if sent:
                    heapq.heappop(sent)  # this frame's own packet
                self.total += 1
                yield self.total - 1, frame
        self.total += len(sent)  # skipped or rejected after the last frame shown


def _sample_bin(t: float, sample_fps: float) -> int:
    """The 1/sample_fps slot of time ``t``; the first frame of each slot is sampled.

    The sampler and the decoder's skipping both use this: they must agree."""
    return int(np.floor(t * sample_fps + 1e-6))


def _timestamp(frame, stream, start: int, index: int, fps: float | None) -> float:
    """Presentation time in seconds of a frame (or a packet: both have ``pts``)."""
    if frame.pts is not None and stream.time_base is not None:
        return float((frame.pts - start) * stream.time_base)
    # No presentation time at all (rare raw streams): fall back to the frame rate.
    return index / fps if fps else float(index)
