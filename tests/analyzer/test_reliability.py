"""What a user's disk can throw at a run: odd names and links, a full disk, an
unusable or shared output folder, stale parts, damaged files, signals and kills.

Each test builds its inputs under ``tmp_path``; docs/reliability.md lists what
they guarantee.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzer.batch import run
from analyzer.cli import main
from analyzer.config import AnalyzerConfig
from analyzer.outdir import DiskFull, OutputLock
from analyzer.runtime import Runtime

from ..helpers import blob_frame, make_video, moving_blob_video, write_image

FAKE = ["--detector", "fake", "--no-report", "-q"]


def _args(tiny_model, *extra) -> list[str]:
    return ["--model", str(tiny_model), *FAKE, *extra]


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*") if p.name.endswith(".tmp"))


def _sources(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "sources.parquet").set_index("source")


@contextlib.contextmanager
def _tmpfs(mount: Path, options: str):
    """A tmpfs mounted at ``mount`` (root only; the test skips where it cannot)."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# --- names, links and folders -------------------------------------------------


def test_a_name_that_is_not_utf8_is_analyzed_and_kept(tmp_path, tiny_model):
    root = tmp_path / "in"
    root.mkdir()
    raw = os.fsencode(root) + b"/caf\xe9.png"
    write_image(Path(os.fsdecode(raw)), blob_frame(100, 100, [(20, 20, 40)]))
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), *_args(tiny_model)]) == 0
    row = _sources(out).loc["caf\\xe9.png"]
    assert row["status"] == "ok" and row["faces"] == 1
    assert row["path_bytes"] == raw  # lossless
    assert row["path"].endswith("caf\\xe9.png")  # readable
    assert pd.read_parquet(out / "faces")["source"].tolist() == ["caf\\xe9.png"]


def test_links_and_odd_folders_are_listed_with_a_reason(
    tmp_path, tiny_model, monkeypatch
):
    root = tmp_path / "in"
    (root / "x.mp4").mkdir(parents=True)  # a folder with a video's name
    write_image(root / "x.mp4" / "inside.png", blob_frame(80, 80, [(10, 10, 40)]))
    (root / "locked").mkdir()
    os.symlink("b.mp4", root / "a.mp4")
    os.symlink("a.mp4", root / "b.mp4")
    os.symlink("gone.jpg", root / "dangling.jpg")
    real_scandir = os.scandir

    def scandir(path):  # root may read any folder: refuse one as a user's disk would
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr("analyzer.walk.os.scandir", scandir)
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), *_args(tiny_model)]) == 1
    table = _sources(out)
    expect = {
        "a.mp4": ("skipped", "symbolic link loop"),
        "b.mp4": ("skipped", "symbolic link loop"),
        "dangling.jpg": ("skipped", "broken symbolic link"),
        "x.mp4": ("skipped", "a folder, not a file"),
        "locked": ("failed", "cannot read folder: Permission denied"),
        "x.mp4/inside.png": ("ok", None),
    }
    for name, (status, error) in expect.items():
        assert table.loc[name, "status"] == status, name
        if error:
            assert table.loc[name, "error"].startswith(error), name


def test_three_inputs_with_the_same_relative_name_stay_distinct(tmp_path, runtime):
    roots = []
    for letter in "abc":
        folder = tmp_path / letter / "x"
        write_image(folder / "img.png", blob_frame(80, 80, [(10, 10, 40)]))
        roots.append(folder)
    run(roots, tmp_path / "out", runtime, progress=False)
    table = _sources(tmp_path / "out")
    assert sorted(table.index) == ["c/x/img.png", "img.png", "x/img.png"]
    assert (table["status"] == "ok").all()
    assert pd.read_parquet(tmp_path / "out" / "faces")["source"].nunique() == 3


# --- the output folder --------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["out_is_a_file", "under_a_file", "is_input", "parent"]
)
def test_an_unusable_output_folder_stops_before_any_work(
    tmp_path, tiny_model, capsys, case, monkeypatch
):
    root = tmp_path / "data"
    root.mkdir()
    moving_blob_video(root / "clip.mp4", 10)
    (tmp_path / "file").write_text("x")
    out = {
        "out_is_a_file": tmp_path / "file",
        "under_a_file": tmp_path / "file" / "out",
        "is_input": root,
        "parent": tmp_path,
    }[case]
    assert main([str(root), "--out", str(out), *_args(tiny_model)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (root / "run.json").exists() and not (tmp_path / "run.json").exists()


def test_a_read_only_mount_is_refused_before_any_work(tmp_path, tiny_model, capsys):
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "clip.mp4", 10)
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        assert main([str(root), "--out", str(mount / "out"), *_args(tiny_model)]) == 2
        assert "Read-only file system" in capsys.readouterr().err


def test_an_empty_out_inside_the_data_is_refused(tmp_path, tiny_model, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    moving_blob_video(root / "clip.mp4", 10)
    monkeypatch.chdir(root)
    assert main([".", "--out", "", *_args(tiny_model)]) == 2
    assert main(["clip.mp4", "--out", ".", *_args(tiny_model)]) == 2


def test_a_second_run_on_the_same_output_is_refused(tmp_path, tiny_model, capsys):
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "clip.mp4", 10)
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):
        assert main([str(root), "--out", str(out), *_args(tiny_model)]) == 2
        assert f"process {os.getpid()}" in capsys.readouterr().err
    assert main([str(root), "--out", str(out), *_args(tiny_model)]) == 0


@pytest.mark.parametrize(
    "flag",
    [
        ["--sample-fps", "nan"],
        ["--sample-fps", "inf"],
        ["--detect-interval", "nan"],
        ["--batch-size", "100000000"],
        ["--min-score", "2"],
        ["--min-face", "-1"],
    ],
)
def test_absurd_numbers_are_usage_errors(tmp_path, tiny_model, flag):
    root = tmp_path / "in"
    root.mkdir()
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), *_args(tiny_model), *flag]) == 2


# --- a full disk --------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB file system of its own (tmpfs), so the disk really fills up."""
    with _tmpfs(tmp_path / "disk", "size=4m") as mount:
        yield mount


@pytest.mark.parametrize("room_kib", [16, 1024])
def test_a_disk_that_fills_up_stops_the_run_cleanly(
    tmp_path, small_disk, tiny_model, capsys, monkeypatch, room_kib
):
    """With 16 KiB left the parts fill the disk; with 1 MiB the parts fit and
    the report's 3.5 MB plotly.js does not."""
    root = tmp_path / "in"
    root.mkdir()
    for i in range(6):
        moving_blob_video(root / f"clip{i}.mp4", 40)
    monkeypatch.setattr("analyzer.outdir.MIN_FREE_BYTES", 0)  # write until full
    (small_disk / "ballast").write_bytes(b"\0" * (4 * 2**20 - room_kib * 1024))
    out = small_disk / "out"
    args = ["--model", str(tiny_model), "--detector", "fake", "-q"]
    assert main([str(root), "--out", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert _leftovers(out) == []
    assert not (out / "report" / "static" / "plotly.min.js").exists()
    if room_kib == 16:
        assert "the disk filled up while writing" in err
        assert not (out / "sources.parquet").exists()
        assert json.loads((out / "run.json").read_text())["complete"] is False
    else:
        assert "the report could not be written" in err
        assert (_sources(out)["status"] == "ok").all()


def test_low_free_space_stops_before_the_next_source(tmp_path, runtime, monkeypatch):
    root = tmp_path / "in"
    root.mkdir()
    for i in range(3):
        moving_blob_video(root / f"clip{i}.mp4", 10)
    usage = shutil.disk_usage(tmp_path)
    calls = []

    def disk_usage(path):
        calls.append(path)
        free = usage.free if len(calls) < 3 else 1024
        return usage._replace(free=free)

    monkeypatch.setattr("analyzer.outdir.shutil.disk_usage", disk_usage)
    out = tmp_path / "out"
    with pytest.raises(DiskFull, match="free some space"):
        run([root], out, runtime, progress=False)
    assert len(list((out / "faces").glob("*.parquet"))) == 1
    assert not (out / "sources.parquet").exists()
    assert json.loads((out / "run.json").read_text())["complete"] is False


# --- stale rows and reruns ----------------------------------------------------


def test_the_tables_hold_exactly_the_ok_sources_after_a_rerun(
    tmp_path, tiny_model, capsys
):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a", "b", "c"):
        moving_blob_video(root / f"{name}.mp4", 20)
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out), *_args(tiny_model)]) == 0
    (root / "a.mp4").write_bytes(b"")  # emptied
    (root / "b.mp4").unlink()  # deleted
    os.unlink(out / "frames" / os.listdir(out / "frames")[0])  # a part lost by hand
    assert main([str(root), "--out", str(out), *_args(tiny_model)]) == 1
    ok = set(_sources(out).query("status == 'ok'").index)
    assert ok == {"c.mp4"}
    for table in ("faces", "frames", "shots"):
        assert set(pd.read_parquet(out / table)["source"]) == ok, table
    capsys.readouterr()
    assert (
        main([str(root), "--out", str(out), *_args(tiny_model, "--every-frame")]) == 1
    )
    assert "analyzed again: 1 (settings changed: 1)" in capsys.readouterr().err


def test_a_part_deleted_by_hand_is_written_again(tmp_path, runtime):
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "clip.mp4", 20)
    out = tmp_path / "out"
    run([root], out, runtime, progress=False)
    frames = pd.read_parquet(out / "frames")
    (part,) = (out / "frames").glob("*.parquet")
    part.unlink()
    summary = run([root], out, runtime, progress=False)
    assert summary.reused == 0 and summary.reanalyzed == {"part missing": 1}
    pd.testing.assert_frame_equal(pd.read_parquet(out / "frames"), frames)


# --- damaged files ------------------------------------------------------------


def test_a_truncated_mkv_fails_instead_of_passing_as_complete(tmp_path, runtime):
    (tmp_path / "in").mkdir()
    clip = moving_blob_video(tmp_path / "in" / "cut.mkv", 60)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
    summary = run([tmp_path / "in"], tmp_path / "out", runtime, progress=False)
    (row,) = summary.rows
    assert row.status == "failed" and row.error.startswith("truncated")


def test_a_rotated_phone_video_is_analyzed_upright(tmp_path, tiny_model):
    path = tmp_path / "in" / "phone.mp4"
    path.parent.mkdir()
    frames = [blob_frame(160, 120, [(20 + i, 30, 36)]) for i in range(20)]
    make_video(path, frames, rotation=-90)  # shown turned 90 degrees clockwise
    runtime = Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", sample_fps=None)
    )
    run([path.parent], tmp_path / "out", runtime, progress=False)
    row = _sources(tmp_path / "out").loc["phone.mp4"]
    assert (row["rotation"], row["width"], row["height"]) == (270, 120, 160)
    faces = pd.read_parquet(tmp_path / "out" / "faces")
    assert faces["track_id"].nunique() == 1 and len(faces) == 20
    # Turned clockwise, the square at x=20, y=30 of the stored picture lands at
    # x = 120 - 30 - 36 = 54, y = 20 of the upright one.
    first = faces.sort_values("frame_index").iloc[0]
    assert (first["x1"], first["y1"]) == pytest.approx((54, 20), abs=2)


def test_a_resolution_change_starts_a_new_shot(tmp_path, tiny_model):
    from fractions import Fraction

    import av

    def encode(frames, w, h):
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = w, h, "yuv420p"
        codec.time_base, codec.framerate = Fraction(1, 10), Fraction(10, 1)
        codec.options = {"x264-params": "repeat-headers=1", "bf": "0"}
        packets = []
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            packets += codec.encode(frame)
        return packets + codec.encode(None)

    big = encode(
        [blob_frame(160, 120, [(20 + 2 * i, 30, 36)]) for i in range(10)], 160, 120
    )
    small = encode(
        [blob_frame(128, 96, [(60, 30 + i, 36)]) for i in range(10)], 128, 96
    )
    path = tmp_path / "in" / "resized.mkv"
    path.parent.mkdir()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("h264", rate=10)
        stream.width, stream.height = 160, 120
        for n, packet in enumerate(big + small):
            copy = av.Packet(bytes(packet))
            copy.pts = copy.dts = n
            copy.time_base, copy.stream = Fraction(1, 10), stream
            copy.is_keyframe = packet.is_keyframe
            container.mux(copy)
    runtime = Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", sample_fps=None)
    )
    run([path.parent], tmp_path / "out", runtime, progress=False)
    faces = pd.read_parquet(tmp_path / "out" / "faces").sort_values("frame_index")
    assert faces["shot"].tolist() == [0] * 10 + [1] * 10
    after = faces[faces["shot"] == 1]
    assert (after["box_source"].iloc[0], after["track_id"].nunique()) == ("detected", 1)
    assert after["x1"].iloc[0] == pytest.approx(60, abs=1)


def _damage(model: Path, dest: Path, member: str, data: bytes | None) -> Path:
    with zipfile.ZipFile(model) as src, zipfile.ZipFile(dest, "w") as out:
        for name in src.namelist():
            if name == member:
                if data is not None:
                    out.writestr(name, data)
            else:
                out.writestr(name, src.read(name))
    return dest


@pytest.mark.parametrize(
    ("member", "data", "message"),
    [
        ("emotion_model.json", b"{not json", "damaged metadata"),
        ("emotion_model.json", b'{"format": "emotion-model/1"}', "damaged metadata"),
        ("model.weights.h5", os.urandom(4096), "cannot load the model"),
        ("model.weights.h5", None, "cannot load the model"),
    ],
)
def test_a_damaged_model_is_a_usage_error(
    tmp_path, tiny_model, capsys, member, data, message
):
    from emotion_contract.modelfile import FORMAT

    if data and b"emotion-model/1" in data:
        data = data.replace(b"emotion-model/1", FORMAT.encode())
    bad = _damage(tiny_model, tmp_path / "bad.keras", member, data)
    root = tmp_path / "in"
    root.mkdir()
    args = ["--model", str(bad), *FAKE]
    assert main([str(root), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_damaged_cached_litert_copy_is_rebuilt(tmp_path, tiny_model, monkeypatch):
    from analyzer.classifier import EmotionClassifier

    monkeypatch.setenv("EMOTION_ANALYZER_CACHE", str(tmp_path / "cache"))
    EmotionClassifier(tiny_model, runtime="litert")
    (copy,) = (tmp_path / "cache").glob("*.tflite")
    whole = copy.read_bytes()
    copy.write_bytes(whole[: len(whole) // 3])
    crops = np.zeros((2, 48, 48, 1), np.uint8)
    probs = EmotionClassifier(tiny_model, runtime="litert").predict(crops)
    assert probs.shape == (2, 7) and copy.read_bytes() == whole


# --- signals and kills --------------------------------------------------------


def _analyzer(root: Path, out: Path, model: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "analyzer",
        str(root),
        "--out",
        str(out),
        "--model",
        str(model),
        "--no-report",
        "-q",
        "--every-frame",
    ]


SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory):
    """Six copies of the bundled sample clip (a real face) and its photo."""
    root = tmp_path_factory.mktemp("many")
    for i in range(6):
        shutil.copy(SAMPLES / "astronaut_pan.mp4", root / f"clip{i}.mp4")
    shutil.copy(SAMPLES / "astronaut.jpg", root / "photo.jpg")
    return root


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c(tmp_path, many_videos, tiny_model):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _analyzer(many_videos, out, tiny_model), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("faces/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()[-2000:]
    assert b"interrupted (SIGTERM)" in err
    assert _leftovers(out) == []
    assert json.loads((out / "run.json").read_text())["complete"] is False


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    drop = ["path", "path_bytes"]
    tables = {
        name: pd.read_parquet(out / name).sort_values(["source", "frame_index"])
        for name in ("faces", "frames")
    }
    tables["shots"] = pd.read_parquet(out / "shots").sort_values(["source", "shot"])
    tables["episodes"] = pd.read_parquet(out / "episodes").sort_values(
        ["source", "track_id", "start_s"]
    )
    tables["tracks"] = pd.read_parquet(out / "tracks.parquet").sort_values(
        ["source", "track_id"]
    )
    tables["sources"] = pd.read_parquet(out / "sources.parquet").drop(columns=drop)
    return {k: v.reset_index(drop=True) for k, v in tables.items()}


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_tables(
    tmp_path, many_videos, tiny_model
):
    whole = tmp_path / "whole"
    subprocess.run(_analyzer(many_videos, whole, tiny_model), check=True)
    expected = _tables(whole)
    out = tmp_path / "resumed"
    # kill -9 during start-up, then as soon as 1, 3 and 5 of the 7 sources are
    # written (the next one is in progress), rerunning each time.
    for parts in (0, 1, 3, 5):
        proc = subprocess.Popen(_analyzer(many_videos, out, tiny_model))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("faces/*.parquet"))) >= parts:
                break
            time.sleep(0.01)
        time.sleep(0.3 if parts == 0 else 0.05)
        assert proc.poll() is None, f"the run ended before it was killed at {parts}"
        proc.kill()
        proc.wait()
    subprocess.run(_analyzer(many_videos, out, tiny_model), check=True)
    assert _leftovers(out) == []
    got = _tables(out)
    for name, table in expected.items():
        pd.testing.assert_frame_equal(got[name], table, obj=name)
