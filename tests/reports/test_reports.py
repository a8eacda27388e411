"""Report rendering: pages, escaping, long videos, and a real headless browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzer.batch import run
from benchmarks.synthetic import BROWSER_FLAGS, hour_long_run
from emotion_contract.labels import EMOTIONS
from reports import render
from reports.cli import main as reports_main
from reports.summaries import longest_episodes, timeline

from ..helpers import blob_frame, make_video, moving_blob_video, write_image

XSS = '"><img src=x onerror=alert(1)>.mp4'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Screenshots of the pages go to pytest's temporary folder, or to TEST_ARTIFACTS.
ARTIFACTS = os.environ.get("TEST_ARTIFACTS")


@pytest.fixture
def analyzed(tmp_path, runtime):
    root = tmp_path / "in"
    (root / "stills").mkdir(parents=True)
    moving_blob_video(root / "clip.mp4", 30)
    moving_blob_video(root / XSS, 10)
    make_video(root / "dark.mp4", [blob_frame(160, 120, [])] * 10)  # no faces
    write_image(root / "stills" / "one.png", blob_frame(100, 100, [(20, 20, 40)]))
    (root / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "out"
    run([root], out, runtime, progress=False)
    return out


def _pages(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (out / "report").glob("*.html")}


def test_report_pages(analyzed):
    index = render(analyzed)
    html = index.read_text()
    assert "clip.mp4" in html and "broken.mp4" in html and "failed" in html
    pages = _pages(analyzed)
    video_pages = [t for n, t in pages.items() if n.startswith("v-")]
    assert len(video_pages) == 3  # clip, the XSS-named clip, the dark clip
    dark = next(t for t in video_pages if "<h1>dark.mp4</h1>" in t)
    assert 'id="no-faces"' in dark
    assert any(n.startswith("f-") and "one.png" in t for n, t in pages.items())
    assert (analyzed / "report" / "static" / "plotly.min.js").stat().st_size > 1e6
    assert "https://" not in "".join(pages.values())  # nothing from a CDN


def test_user_strings_are_escaped(analyzed):
    render(analyzed)
    for name, text in _pages(analyzed).items():
        assert "<img src=x" not in text, name
    assert (
        "&lt;img src=x onerror=alert(1)&gt;"
        in (analyzed / "report" / "index.html").read_text()
    )


def test_empty_and_image_only_runs(tmp_path, runtime):
    (tmp_path / "nothing").mkdir()
    run([tmp_path / "nothing"], tmp_path / "empty", runtime, progress=False)
    assert 'id="empty"' in render(tmp_path / "empty").read_text()
    images = tmp_path / "images"
    images.mkdir()
    write_image(images / "a.jpg", blob_frame(100, 100, [(10, 10, 50)]))
    run([images], tmp_path / "img-out", runtime, progress=False)
    assert "a.jpg" in render(tmp_path / "img-out").read_text()
    assert reports_main([str(tmp_path / "missing")]) == 2


def test_long_video_page_stays_small(tmp_path):
    hour_long_run(tmp_path)
    render(tmp_path, max_points=1500)
    page = next((tmp_path / "report").glob("v-*.html"))
    assert page.stat().st_size < 5_000_000


def test_timeline_downsamples_and_marks_gaps():
    t = np.concatenate([np.arange(0, 100, 0.2), np.arange(200, 300, 0.2)])
    track = pd.DataFrame({"timestamp_s": t, **{e: 1 / 7 for e in EMOTIONS}})
    data = timeline(track, 0.2, max_points=100)
    assert len(data) <= 101 + 1
    assert data[EMOTIONS[0]].isna().sum() == 1  # one gap row between the stretches
    episodes = longest_episodes(
        pd.DataFrame({"timestamp_s": [0, 0.2, 0.4, 5.0], "emotion": ["sad"] * 4}), 0.2
    )
    assert episodes["sad"] == pytest.approx(0.6)


def _browser(url: str, *extra: str, user_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            *BROWSER_FLAGS,
            f"--user-data-dir={user_dir}",
            "--virtual-time-budget=8000",
            "--enable-logging=stderr",
            "--v=0",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_pages_in_headless_browser(analyzed, tmp_path):
    index = render(analyzed)
    video = next(
        p
        for p in (analyzed / "report").glob("v-*.html")
        if "<h1>clip.mp4</h1>" in p.read_text()
    )
    for page, marker in ((index, 'id="sources"'), (video, 'class="main-svg"')):
        result = _browser(page.as_uri(), "--dump-dom", user_dir=tmp_path / page.stem)
        assert marker in result.stdout, result.stderr[-2000:]
        console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
        assert not console, console
        assert '<img src="x"' not in result.stdout
    shots = Path(ARTIFACTS) if ARTIFACTS else tmp_path / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for page in (index, video):
        shot = shots / f"report-{page.stem}.png"
        _browser(
            page.as_uri(),
            f"--screenshot={shot}",
            "--window-size=1200,900",
            user_dir=tmp_path / f"shot-{page.stem}",
        )
        assert shot.stat().st_size > 10_000
