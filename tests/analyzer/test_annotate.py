"""--annotate: one MP4 per video, every frame, faces drawn only inside their boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analyzer.batch
from analyzer.annotate import draw_faces
from analyzer.batch import run

from ..helpers import blob_frame, make_video, moving_blob_video
from .test_pipeline import make_runtime


def _decode(path):
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        times = [float(f.pts * f.time_base) for f in frames]
        images = [f.to_ndarray(format="bgr24") for f in frames]
    return images, times


@pytest.fixture
def clip(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "clip.mp4", 30)  # 10 fps: every other frame analyzed
    return root


def test_annotated_video_matches_the_source_and_draws_inside_boxes(
    clip, tmp_path, tiny_model
):
    out = tmp_path / "out"
    warnings = []
    summary = run(
        [clip],
        out,
        make_runtime(tiny_model),
        progress=False,
        annotate=True,
        on_warning=warnings.append,
    )
    (row,) = summary.rows
    assert row.annotated == "annotated/" + row.part.replace(".parquet", ".mp4")
    assert not warnings
    video = out / row.annotated
    annotated, times = _decode(video)
    source, source_times = _decode(clip / "clip.mp4")
    assert len(annotated) == len(source) == 30
    assert annotated[0].shape == source[0].shape
    np.testing.assert_allclose(
        times, np.array(source_times) - source_times[0], atol=1e-3
    )
    stored = pd.read_parquet(out / "sources.parquet")
    assert stored.loc[0, "annotated"] == row.annotated

    faces = pd.read_parquet(out / "faces")
    for index in (4, 5):  # analyzed (thick box), then held from it (thin box)
        diff = np.abs(annotated[index].astype(int) - source[index]).max(axis=2)
        box = faces[faces.frame_index == 4].iloc[0]
        inside = np.zeros_like(diff, bool)
        m = 4  # the codec's ringing reaches a few pixels past a drawn edge
        inside[
            max(0, int(box.y1) - m) : int(box.y2) + m,
            max(0, int(box.x1) - m) : int(box.x2) + m,
        ] = True
        assert diff[inside].max() > 100, "nothing drawn in the box"
        assert diff[~inside].max() < 40, "pixels changed outside the box"


def test_resume_keeps_the_video_and_reanalysis_replaces_it(clip, tmp_path, tiny_model):
    out = tmp_path / "out"
    run([clip], out, make_runtime(tiny_model), progress=False, annotate=True)
    (video,) = (out / "annotated").glob("*.mp4")
    made = video.stat().st_mtime_ns
    again = run([clip], out, make_runtime(tiny_model), progress=False)
    assert again.reused == 1 and again.rows[0].annotated
    assert video.stat().st_mtime_ns == made
    # New settings, new rows: the old video goes, and is made again if asked for.
    run([clip], out, make_runtime(tiny_model, smooth_s=1.0), progress=False)
    assert not video.exists()
    run(
        [clip],
        out,
        make_runtime(tiny_model, smooth_s=1.0),
        progress=False,
        annotate=True,
    )
    assert video.exists()
    (clip / "clip.mp4").unlink()  # pruned with the source's parts
    moving_blob_video(clip / "other.mp4", 10)
    run([clip], out, make_runtime(tiny_model), progress=False)
    assert not video.exists()


def test_a_failed_annotation_keeps_the_rows(clip, tmp_path, tiny_model, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(analyzer.batch, "annotate_video", broken)
    warnings = []
    summary = run(
        [clip],
        tmp_path / "out",
        make_runtime(tiny_model),
        progress=False,
        annotate=True,
        on_warning=warnings.append,
    )
    (row,) = summary.rows
    assert row.status == "ok" and row.faces and row.annotated is None
    assert len(warnings) == 1 and "encoder exploded" in warnings[0]


def test_variable_frame_rate_keeps_its_timing(tmp_path, tiny_model):
    root = tmp_path / "in"
    root.mkdir()
    pts = [0, 40, 80, 200, 240, 400, 440, 480]
    frames = [blob_frame(96, 64, [(10 + 3 * i, 10, 30)]) for i in range(len(pts))]
    make_video(root / "vfr.mp4", frames, pts_ms=pts)
    summary = run(
        [root],
        tmp_path / "out",
        make_runtime(tiny_model),
        progress=False,
        annotate=True,
    )
    _, times = _decode(tmp_path / "out" / summary.rows[0].annotated)
    np.testing.assert_allclose(times, np.array(pts) / 1000, atol=1e-3)


def test_drawing_stays_inside_the_box():
    image = np.zeros((80, 120, 3), np.uint8)
    draw_faces(image, [(3, 20.4, 10.6, 90.2, 70.0, "happy", 0.91)], measured=True)
    changed = np.argwhere(image.any(axis=2))
    assert changed[:, 0].min() >= 10 and changed[:, 0].max() <= 70
    assert changed[:, 1].min() >= 20 and changed[:, 1].max() <= 90
    thin = np.zeros_like(image)
    draw_faces(thin, [(3, 20, 10, 90, 70, "happy", 0.91)], measured=False)
    assert thin.any(axis=2).sum() < image.any(axis=2).sum()


def test_report_plays_the_annotated_video_inline(clip, tmp_path, tiny_model):
    from reports import render

    out = tmp_path / "out"
    run([clip], out, make_runtime(tiny_model), progress=False, annotate=True)
    render(out)
    (page,) = (out / "report").glob("v-*.html")
    html = page.read_text()
    src = html.split('<video controls preload="metadata" src="')[1].split('"')[0]
    assert (page.parent / src).resolve() == next((out / "annotated").glob("*.mp4"))
    (out / "annotated" / Path(src).name).unlink()
    render(out)
    assert "<video" not in page.read_text()
