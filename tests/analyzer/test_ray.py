"""The Ray engine: the same tables as the local engine, resume across engines, and
a killed worker costs nothing. On a local Ray instance (2 CPUs) that the module's
fixture starts and stops; skipped only where the [ray] extra is not installed."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from analyzer.batch import run
from analyzer.config import AnalyzerConfig
from analyzer.runtime import Runtime

from ..conftest import MEDIA

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
from analyzer.ray_engine import ray_engine  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("faces", "frames", "shots", "episodes", "tracks.parquet", "sources.parquet")
KEYS = ["source", "frame_index", "track_id", "shot", "start_s"]
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason="../shared/media absent")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shipped():
    return Runtime.create(AnalyzerConfig())


def _inputs(root: Path, *clips: str) -> Path:
    root.mkdir()
    for name in clips:
        shutil.copy(MEDIA / name, root / name)
    shutil.copy(ROOT / "samples" / "astronaut.jpg", root)
    (root / "broken.mp4").write_bytes(b"\x00" * 500)
    return root


def assert_same_tables(a: Path, b: Path) -> None:
    for table in TABLES:
        left, right = pd.read_parquet(a / table), pd.read_parquet(b / table)
        key = [c for c in KEYS if c in left.columns]
        left = left.sort_values(key).reset_index(drop=True)
        right = right.sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, obj=table)


@pytest.mark.slow
@needs_media
def test_ray_and_local_engines_write_the_same_tables(tmp_path, local_ray, shipped):
    inputs = _inputs(tmp_path / "in", "cuts.mp4", "woman2.mp4", "phone_street.mp4")
    both = [inputs, ROOT / "samples"]
    local = run(both, tmp_path / "local", shipped, progress=False)
    on_ray = run(both, tmp_path / "ray", shipped, progress=False, engine=ray_engine())
    assert [r.status for r in on_ray.rows] == [r.status for r in local.rows]
    assert sum(r.status == "failed" for r in on_ray.rows) == 1  # broken.mp4
    assert_same_tables(tmp_path / "local", tmp_path / "ray")


@pytest.mark.slow
@needs_media
def test_resume_works_across_engines(tmp_path, local_ray, shipped):
    inputs = _inputs(tmp_path / "in", "phone_street.mp4")
    out = tmp_path / "out"
    run([inputs], out, shipped, progress=False, engine=ray_engine())
    again = run([inputs], out, shipped, progress=False)  # local after ray
    assert again.reused == 2 and not again.reanalyzed
    (inputs / "phone_street.mp4").touch()  # changed: analyzed again, on Ray
    third = run([inputs], out, shipped, progress=False, engine=ray_engine())
    assert third.reused == 1 and third.reanalyzed == {"file changed": 1}


def _worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::AnalyzerWorker" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
@needs_media
def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path, local_ray, shipped):
    from benchmarks.speed import loop_video

    inputs = _inputs(tmp_path / "in", "phone_street.mp4", "cuts.mp4")
    loop_video(MEDIA / "woman2.mp4", inputs / "woman2_x10.mp4", 10)
    reference = run([inputs], tmp_path / "local", shipped, progress=False)
    out = tmp_path / "ray"
    done = {}
    worker = threading.Thread(
        target=lambda: done.update(
            summary=run([inputs], out, shipped, progress=False, engine=ray_engine())
        )
    )
    worker.start()
    killed = []
    deadline = time.time() + 120
    while not killed and time.time() < deadline and worker.is_alive():
        if list((out / "faces").glob(".*.tmp")):  # a source is being written
            for pid in _worker_pids():  # every worker, so the busy one too
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    worker.join(timeout=300)
    assert killed, "no worker was caught mid-source"
    summary = done["summary"]
    assert [r.status for r in summary.rows] == [r.status for r in reference.rows]
    assert_same_tables(tmp_path / "local", out)
    frames = pd.read_parquet(out / "frames")
    assert not frames.duplicated(["source", "frame_index"]).any()
    assert not list(out.rglob(".*.tmp"))
