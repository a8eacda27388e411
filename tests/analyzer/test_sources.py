"""Finding sources and streaming frames."""

from __future__ import annotations

import time

import numpy as np
import pytest

from analyzer.prefetch import prefetch
from analyzer.sources import Frame, find_sources


def test_find_sources_walks_and_classifies(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.MP4", "a/b/y.jpeg", "z.txt", "a/b/w.webm"):
        (tmp_path / name).write_bytes(b"")
    out = tmp_path / "a" / "out"
    out.mkdir()
    (out / "leftover.mp4").write_bytes(b"")
    found = {s.name: s.kind for s in find_sources([tmp_path], exclude=out)}
    assert found == {
        "a/x.MP4": "video",
        "a/b/y.jpeg": "image",
        "z.txt": "other",
        "a/b/w.webm": "video",
    }
    with pytest.raises(FileNotFoundError):
        find_sources([tmp_path / "missing"])


def test_prefetch_keeps_order_and_raises_decoder_errors():
    assert list(prefetch(iter(range(100)), max_frames=4)) == list(range(100))

    def broken():
        yield 1
        raise ValueError("decoder broke")

    stream = prefetch(broken())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="decoder broke"):
        next(stream)


def test_prefetch_stops_when_consumer_leaves():
    import threading

    stream = prefetch(iter(range(10_000)), max_frames=2)
    assert next(stream) == 0
    stream.close()  # must not hang on the producer's full queue
    # ... nor leave it blocked there: the decoder thread has ended.
    assert not [t for t in threading.enumerate() if t.name == "decoder"]


def test_prefetch_holds_at_most_its_byte_budget():
    decoded = []

    def frames():
        for i in range(50):
            decoded.append(i)
            yield Frame(i, None, np.zeros((10, 10, 3), np.uint8))  # 300 bytes

    stream = prefetch(frames(), max_bytes=1000)
    first = next(stream)
    deadline = time.monotonic() + 10
    while len(decoded) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)  # the decoder runs ahead as far as the budget lets it
    time.sleep(0.1)
    # One frame handed over, three held (900 bytes), one decoded and waiting.
    assert first.index == 0 and len(decoded) == 5
    assert [f.index for f in stream] == list(range(1, 50))


def test_prefetch_passes_a_frame_larger_than_the_budget():
    big = [Frame(i, None, np.zeros((100, 100, 3), np.uint8)) for i in range(3)]
    assert [f.index for f in prefetch(iter(big), max_bytes=10)] == [0, 1, 2]


def test_sampling_skips_b_frames_yet_yields_the_same_frames_and_indices(tmp_path):
    import av

    from analyzer.sources import VideoInfo, _Decoder, iter_video

    from ..helpers import make_video

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(90)]  # x264 adds B-frames
    path = make_video(tmp_path / "b.mp4", frames, fps=30)

    def stream(sample_fps):
        info = VideoInfo()
        out = [
            (f.index, f.timestamp_s, f.image.tobytes())
            for f in iter_video(path, info, sample_fps=sample_fps)
        ]
        return out, info.frames_total

    every, total = stream(None)
    expected, last = [], -1
    for index, t, image in every:  # the first frame of each 1/5 s
        if int(np.floor(t * 5 + 1e-6)) > last:
            expected.append((index, t, image))
            last = int(np.floor(t * 5 + 1e-6))
    sampled, sampled_total = stream(5.0)
    assert [s[:2] for s in sampled] == [e[:2] for e in expected]
    assert sampled == expected and sampled_total == total == 90
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        decoder = _Decoder(container, s, 5.0, s.start_time or 0)
        shown = sum(1 for _ in decoder)
    assert shown < decoder.total == 90  # the codec did skip frames


def test_bgr_converter_gives_pyav_pixels(tmp_path):
    import av

    from analyzer.sources import BgrConverter

    from ..helpers import make_video

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (48, 80, 3), dtype=np.uint8) for _ in range(6)]
    path = make_video(tmp_path / "noise.mp4", frames, fps=10)
    to_bgr = BgrConverter()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            ours = to_bgr(frame)
            assert ours.shape == (48, 80, 3) and ours.dtype == np.uint8
            assert np.array_equal(ours, frame.to_ndarray(format="bgr24"))


def test_sampled_small_videos_decode_on_one_thread():
    from analyzer.sources import VideoInfo, decoder_threading

    sd, hd = VideoInfo(width=640, height=360), VideoInfo(width=1920, height=1080)
    assert decoder_threading(sd, 5.0) == "NONE"
    assert decoder_threading(sd, None) == "AUTO"  # every frame: the decoder limits
    assert decoder_threading(hd, 5.0) == "AUTO"
    assert decoder_threading(VideoInfo(), 5.0) == "AUTO"  # size unknown
