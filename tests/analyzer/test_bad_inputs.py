"""Bad files fail alone, with a clear error; the rest of the batch is written."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from analyzer import sources
from analyzer.batch import run
from analyzer.cli import main

from ..helpers import blob_frame, moving_blob_video, write_image


def _truncated(faststart):
    def make(path):
        moving_blob_video(path, 60, faststart=faststart)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return make


BAD_FILES = [
    ("empty.mp4", lambda p: p.write_bytes(b""), "empty"),
    ("empty.jpg", lambda p: p.write_bytes(b""), "empty"),
    ("garbage.png", lambda p: p.write_bytes(os.urandom(500)), "not a decodable image"),
    ("garbage.mov", lambda p: p.write_bytes(os.urandom(5000)), "cannot open video"),
    ("index_lost.mp4", _truncated(faststart=False), "cannot open video"),
    ("truncated.mp4", _truncated(faststart=True), "truncated: decoded"),
    (
        "cut.jpg",
        lambda p: p.write_bytes(
            write_image(p, blob_frame(64, 64, [])).read_bytes()[:40]
        ),
        "decodable",
    ),
]


def _damaged(path, bad: set[int]):
    """A 90-frame clip whose packets numbered ``bad`` hold random bytes instead."""
    import av
    import numpy as np

    from ..helpers import make_video

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(90)]
    clean = make_video(path.with_name("clean.tmp.mp4"), frames, fps=30)
    with av.open(str(clean)) as inp, av.open(str(path), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for i, packet in enumerate(p for p in inp.demux(vin) if p.size):
            if i in bad:
                garbage = av.Packet(rng.bytes(packet.size))
                garbage.pts, garbage.dts = packet.pts, packet.dts
                garbage.time_base = packet.time_base
                garbage.is_keyframe = packet.is_keyframe
                packet = garbage
            packet.stream = vout
            out.mux(packet)
    clean.unlink()
    return path


BAD_FILES.append(
    ("shredded.mp4", lambda p: _damaged(p, set(range(10, 90, 3))), "corrupt: the")
)


@pytest.mark.parametrize("sample_fps", [None, 5.0])
def test_a_glitch_does_not_fail_a_video(tmp_path, tiny_model, sample_fps):
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    root = tmp_path / "in"
    root.mkdir()
    _damaged(root / "glitch.mp4", {40})
    config = AnalyzerConfig(model=tiny_model, detector="fake", sample_fps=sample_fps)
    summary = run([root], tmp_path / "out", Runtime.create(config), progress=False)
    (row,) = summary.rows
    assert row.status == "ok", row.error
    assert row.decode_errors == 1
    assert row.frames_total == 90  # a rejected packet's frame keeps its place
    sources = pd.read_parquet(tmp_path / "out" / "sources.parquet")
    assert sources["decode_errors"].tolist() == [row.decode_errors]


@pytest.mark.parametrize(("name", "make", "message"), BAD_FILES)
def test_bad_file_fails_alone(tmp_path, runtime, name, make, message):
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "good.mp4", 10)
    make(root / name)
    summary = run([root], tmp_path / "out", runtime, progress=False)
    rows = {r.source: r for r in summary.rows}
    assert rows["good.mp4"].status == "ok"
    bad = rows[name]
    assert bad.status == "failed"
    assert message in bad.error
    assert not any(name in p.name for p in (tmp_path / "out" / "faces").iterdir())


def test_unreadable_file(tmp_path, runtime, monkeypatch):
    root = tmp_path / "in"
    root.mkdir()
    locked = write_image(root / "locked.png", blob_frame(64, 64, [(10, 10, 40)]))
    write_image(root / "open.png", blob_frame(64, 64, [(10, 10, 40)]))
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make open() refuse instead
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if str(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(sources, "open", refusing_open, raising=False)
    summary = run([root], tmp_path / "out", runtime, progress=False)
    rows = {r.source: r for r in summary.rows}
    assert rows["open.png"].status == "ok"
    assert rows["locked.png"].status == "failed"
    assert "Permission denied" in rows["locked.png"].error


ODD_NAMES = [
    "with space.mp4",
    "ünïcødé 表情.png",
    'quote\'s "double".jpg',
    "<script>.mp4",
    "a>b<c.png",
]


def test_odd_file_names(tmp_path, runtime):
    root = tmp_path / "in"
    root.mkdir()
    for name in ODD_NAMES:
        if name.endswith(".mp4"):
            moving_blob_video(root / name, 10)
        else:
            write_image(root / name, blob_frame(80, 80, [(10, 10, 40)]))
    summary = run([root], tmp_path / "out", runtime, progress=False)
    assert {r.source for r in summary.rows} == set(ODD_NAMES)
    assert not summary.failed
    faces = pd.read_parquet(tmp_path / "out" / "faces")
    assert set(faces["source"]) == set(ODD_NAMES)


def test_exit_codes(tmp_path, tiny_model, capsys):
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "good.mp4", 10)
    args = ["--model", str(tiny_model), "--detector", "fake", "--no-report", "-q"]
    assert main([str(root), "--out", str(tmp_path / "a"), *args]) == 0
    (root / "bad.mp4").write_bytes(b"")
    assert main([str(root), "--out", str(tmp_path / "b"), *args]) == 1
    assert "warning: bad.mp4: file is empty" in capsys.readouterr().err
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "c"), *args]) == 2
    with pytest.raises(SystemExit) as exc:
        main([str(root), "--out", str(tmp_path / "d"), "--detector", "nope"])
    assert exc.value.code == 2
    no_model = ["--model", str(tmp_path / "none.keras"), "--detector", "fake"]
    assert main([str(root), "--out", str(tmp_path / "e"), *no_model]) == 2
    assert "does not exist" in capsys.readouterr().err
