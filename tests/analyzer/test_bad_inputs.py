"""Bad files fail alone, with a clear error; the rest of the batch is written."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from analyzer import sources
from analyzer.cli import main
from analyzer.pipeline import run

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


@pytest.mark.parametrize(("name", "make", "message"), BAD_FILES)
def test_bad_file_fails_alone(tmp_path, runtime, name, make, message):
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "good.mp4", 10)
    make(root / name)
    summary = run([root], tmp_path / "out", runtime, progress=False)
    rows = {r["source"]: r for r in summary.rows}
    assert rows["good.mp4"]["status"] == "ok"
    bad = rows[name]
    assert bad["status"] == "failed"
    assert message in bad["error"]
    assert not any(name in p.name for p in (tmp_path / "out" / "faces").iterdir())


def test_unreadable_file(tmp_path, runtime, monkeypatch):
    root = tmp_path / "in"
    root.mkdir()
    locked = write_image(root / "locked.png", blob_frame(64, 64, [(10, 10, 30)]))
    write_image(root / "open.png", blob_frame(64, 64, [(10, 10, 30)]))
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make open() refuse instead
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if str(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(sources, "open", refusing_open, raising=False)
    summary = run([root], tmp_path / "out", runtime, progress=False)
    rows = {r["source"]: r for r in summary.rows}
    assert rows["open.png"]["status"] == "ok"
    assert rows["locked.png"]["status"] == "failed"
    assert "Permission denied" in rows["locked.png"]["error"]


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
    assert {r["source"] for r in summary.rows} == set(ODD_NAMES)
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
