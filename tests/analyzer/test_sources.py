"""Finding sources and streaming frames."""

from __future__ import annotations

import pytest

from analyzer.sources import find_sources, prefetch


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
    assert list(prefetch(iter(range(100)), size=4)) == list(range(100))

    def broken():
        yield 1
        raise ValueError("decoder broke")

    stream = prefetch(broken())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="decoder broke"):
        next(stream)


def test_prefetch_stops_when_consumer_leaves():
    stream = prefetch(iter(range(10_000)), size=2)
    assert next(stream) == 0
    stream.close()  # must not hang on the producer's full queue
