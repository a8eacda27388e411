"""Live mode: paced files and HTTP streams, rolling parts, signals, reconnects and
the browser view."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from analyzer.live import LatestFrame, build_parser, run_live
from benchmarks.synthetic import BROWSER_FLAGS
from emotion_contract.schema import FACE_SCHEMA, FRAME_SCHEMA

from ..helpers import blob_frame, make_video, moving_blob_video

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.environ.get("TEST_ARTIFACTS")


def _args(*argv):
    return build_parser().parse_args([str(a) for a in argv])


def _clip_times(path: Path) -> list[float]:
    import av

    with av.open(str(path)) as container:
        return [f.time for f in container.decode(video=0)]


def _check_rows_match(out: Path, clip: Path) -> pd.DataFrame:
    frames = pd.read_parquet(out / "frames")
    times = _clip_times(clip)
    assert len(frames) > 0
    for index, t in zip(frames.frame_index, frames.timestamp_s, strict=True):
        assert t == pytest.approx(times[index % len(times)], abs=1e-6)
    return frames


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_newest_frame_wins():
    slot = LatestFrame()
    for i in range(5):
        slot.put(i)
    assert slot.get(0.01) == 4 and slot.dropped == 4
    assert slot.get(0.01) is None
    slot.close("end of stream")
    assert slot.get(1.0) is None and slot.closed == "end of stream"


def test_realtime_file_rolls_readable_parts(tmp_path, runtime):
    clip = moving_blob_video(tmp_path / "clip.mp4", 25)  # 10 fps: 2.5 s
    out = tmp_path / "out"
    args = _args(clip, "--out", out, "--realtime", "--part-seconds", "0.4")
    result, seen_mid_run = {}, []

    def go():
        result.update(run_live(args, runtime, threading.Event(), []))

    worker = threading.Thread(target=go)
    worker.start()
    while worker.is_alive():
        parts = sorted((out / "faces").glob("*.parquet"))
        if parts:  # every visible part is whole, while the run goes on
            seen_mid_run.append(len(pd.read_parquet(out / "faces")))
            for part in parts:
                pd.read_parquet(part)
        time.sleep(0.2)
    worker.join()
    assert result["ended"] == "end of stream" and result["complete"]
    assert seen_mid_run and min(seen_mid_run) < result["faces"]
    frames = _check_rows_match(out, clip)
    assert result["frames_received"] == 25
    assert result["frames_analyzed"] + result["frames_dropped"] == 25
    assert len(frames) == result["frames_analyzed"] and result["parts"] >= 4
    faces = pd.read_parquet(out / "faces")
    assert set(FACE_SCHEMA.names) | {"wall_time_s", "segment"} <= set(faces.columns)
    assert set(FRAME_SCHEMA.names) <= set(frames.columns)
    # Paced at its own rate: 2.5 s of clip take about 2.5 s of wall time.
    assert 2.0 < frames.wall_time_s.max() - frames.wall_time_s.min() < 4.0
    assert not list(out.rglob(".*.tmp"))
    facts = json.loads((out / "run.json").read_text())
    assert facts["mode"] == "live" and facts["latency_rows"]["p95_ms"] > 0


def test_a_rotated_phone_video_is_analyzed_upright(tmp_path, runtime):
    clip = tmp_path / "phone.mp4"
    frames = [blob_frame(160, 120, [(20 + i, 30, 36)]) for i in range(10)]
    make_video(clip, frames, rotation=-90)  # shown turned 90 degrees clockwise
    out = tmp_path / "out"
    facts = run_live(_args(clip, "--out", out), runtime, threading.Event(), [])
    info = facts["source_info"]
    assert (info["rotation"], info["width"], info["height"]) == (270, 120, 160)
    # The square at x=20+i, y=30 of stored frame i lands at x = 120 - 30 - 36
    # = 54, y = 20+i of the upright one (as in batch mode). The first frames may
    # be dropped while the newest frame wins, so i is the row's own frame.
    first = pd.read_parquet(out / "faces").sort_values("frame_index").iloc[0]
    expected = (54, 20 + first["frame_index"])
    assert (first["x1"], first["y1"]) == pytest.approx(expected, abs=2)


def test_http_stream_rows_match_the_clip(tmp_path, runtime, served):
    folder, url = served
    clip = moving_blob_video(folder / "clip.mp4", 20, faststart=True)
    out = tmp_path / "out"
    facts = run_live(
        _args(f"{url}/clip.mp4", "--out", out, "--realtime"),
        runtime,
        threading.Event(),
        [],
    )
    assert facts["ended"] == "end of stream"
    frames = _check_rows_match(out, clip)
    assert (frames.source == f"{url}/clip.mp4").all()


class CutOnceHandler(QuietHandler):
    """Serves the first request cut off after a third of the file."""

    served = 0

    def copyfile(self, source, outputfile):
        type(self).served += 1
        if type(self).served == 1:
            data = source.read()
            outputfile.write(data[: len(data) // 3])
            self.close_connection = True
            raise ConnectionAbortedError("cut")
        return super().copyfile(source, outputfile)


def test_a_stream_that_stops_is_reopened(tmp_path, runtime):
    folder = tmp_path / "www"
    folder.mkdir()
    clip = moving_blob_video(folder / "clip.mp4", 30, faststart=True)
    handler = functools.partial(CutOnceHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
    try:
        facts = run_live(
            _args(
                url,
                "--out",
                tmp_path / "out",
                "--realtime",
                "--reconnect",
                "--duration",
                "4",
            ),
            runtime,
            threading.Event(),
            [],
        )
    finally:
        server.shutdown()
        server.server_close()
    assert facts["ended"] == "duration reached"
    # The cut connection (FFmpeg gives up on it), the whole clip (3 s), then the
    # end of the stream, reopened again.
    assert facts["segments"] >= 3
    assert facts["gaps"][0]["segment"] == 0 and "error" in facts["gaps"][0]["reason"]
    assert facts["gaps"][1]["reason"] == "end of stream"
    frames = _check_rows_match(tmp_path / "out", clip)
    assert {1, 2} <= set(frames.segment)
    # The gap shows in the data: wall time jumps across the reconnection, and the
    # stream's own timestamps start again.
    one, two = frames[frames.segment == 1], frames[frames.segment == 2]
    assert two.wall_time_s.min() - one.wall_time_s.max() >= 0.4
    assert two.timestamp_s.min() < one.timestamp_s.max()


@pytest.mark.slow
def test_sigterm_commits_the_last_part_and_leaves_nothing_partial(tmp_path):
    out = tmp_path / "out"
    clip = ROOT / "samples" / "astronaut_pan.mp4"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analyzer.live",
            str(clip),
            "--out",
            str(out),
            "--realtime",
            "--part-seconds",
            "1",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not list((out / "faces").glob("*.parquet")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.3)  # into a part that is not committed yet
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    facts = json.loads((out / "run.json").read_text())
    assert facts["ended"] == "terminated" and facts["complete"]
    assert not list(out.rglob(".*.tmp"))
    frames = pd.read_parquet(out / "frames")
    assert len(frames) == facts["frames_analyzed"] > 0
    assert len(pd.read_parquet(out / "faces")) == facts["faces"]
    assert frames.frame_index.max() < 90  # stopped before the clip's end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_live_page_shows_frames_and_charts(tmp_path, runtime):
    clip = moving_blob_video(tmp_path / "clip.mp4", 150)  # 15 s at 10 fps
    port = _free_port()
    args = _args(
        clip, "--out", tmp_path / "out", "--realtime", "--serve", f"127.0.0.1:{port}"
    )
    stop = threading.Event()
    worker = threading.Thread(target=run_live, args=(args, runtime, stop, []))
    worker.start()
    try:
        time.sleep(1.5)
        url = f"http://127.0.0.1:{port}/"
        shots = Path(ARTIFACTS) if ARTIFACTS else tmp_path / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        common = [
            CHROMIUM,
            *BROWSER_FLAGS,
            "--virtual-time-budget=5000",
            "--window-size=1000,900",
        ]
        dom = subprocess.run(
            [*common, f"--user-data-dir={tmp_path / 'u1'}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        shot = shots / "live-page.png"
        subprocess.run(
            [
                *common,
                f"--user-data-dir={tmp_path / 'u2'}",
                f"--screenshot={shot}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop.set()
        worker.join()
    assert 'id="track-' in dom and 'class="main-svg"' in dom, dom[-2000:]
    assert 'data-frames="' in dom  # the MJPEG image has shown frames
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image[80:400, :600].std() > 10
