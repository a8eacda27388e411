"""Every frame of every container the tests make: indices 0..n-1 once each,
strictly increasing timestamps, and as many frames as an independent decode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzer.batch import run
from analyzer.config import AnalyzerConfig
from analyzer.runtime import Runtime
from analyzer.sources import VideoInfo, iter_video

from ..helpers import blob_frame, make_video, packed_bframes_avi

N = 24


def _frames() -> list[np.ndarray]:
    """A moving face whose background brightness numbers the frame (10 * i)."""
    frames = [blob_frame(96, 64, [(4 + 2 * i, 10, 36)]) for i in range(N)]
    for i, frame in enumerate(frames):
        frame[:, 60:] = 10 * i
    return frames


def _make(kind: str, path):
    frames = _frames()
    if kind == "packed_bframes.avi":
        return packed_bframes_avi(path, frames)
    if kind == "vfr.mkv":
        pts = np.cumsum([0] + [40 if i % 3 else 120 for i in range(1, N)])
        return make_video(path, frames, pts_ms=pts.tolist())
    codec = {"mpeg4.avi": "mpeg4", "vp9.webm": "libvpx-vp9", "mpeg4.mov": "mpeg4"}
    return make_video(path, frames, fps=25, codec=codec.get(kind, "libx264"))


def _independent_count(path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


KINDS = [
    "h264_bframes.mp4",
    "h264.mkv",
    "h264.mov",
    "vp9.webm",
    "mpeg4.mov",
    "mpeg4.avi",
    "packed_bframes.avi",
    "vfr.mkv",
]


@pytest.mark.parametrize("kind", KINDS)
def test_every_frame_once_in_order(tmp_path, kind):
    path = _make(kind, tmp_path / kind)
    frames = list(iter_video(path, VideoInfo(), sample_fps=None))
    assert [f.index for f in frames] == list(range(len(frames)))
    stamps = [f.timestamp_s for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    assert len(frames) == _independent_count(path) == N
    # Frames come out in display order: the background numbers them.
    shade = [int(f.image[:, 70:, 1].mean()) for f in frames]
    assert shade == pytest.approx([10 * i for i in range(N)], abs=6)


def test_packed_bframes_in_the_output_tables(tmp_path, tiny_model):
    path = packed_bframes_avi(tmp_path / "old.avi", _frames())
    runtime = Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", sample_fps=None)
    )
    summary = run([path], tmp_path / "out", runtime, progress=False)
    assert not summary.failed
    frames = pd.read_parquet(tmp_path / "out" / "frames")
    assert frames["frame_index"].tolist() == list(range(N))
    assert frames["timestamp_s"].is_monotonic_increasing
    assert frames["timestamp_s"].is_unique
    sources = pd.read_parquet(tmp_path / "out" / "sources.parquet")
    assert sources["frames_total"].tolist() == [N]


@pytest.mark.parametrize("kind", KINDS)
def test_reports_read_back_the_frame_the_analyzer_saw(tmp_path, kind):
    """Report thumbnails find a row's frame by its index and timestamp, not by
    OpenCV's frame count (another frame on B-frame or variable-rate files)."""
    from reports.thumbs import read_frame

    path = _make(kind, tmp_path / kind)
    frames = list(iter_video(path, VideoInfo(), sample_fps=None))
    for frame in (frames[0], frames[7], frames[N - 2]):
        again = read_frame(path, "video", frame.index, frame.timestamp_s)
        assert again is not None
        assert int(again[:, 70:, 1].mean()) == pytest.approx(10 * frame.index, abs=6)
