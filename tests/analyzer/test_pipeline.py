"""End-to-end pipeline tests on synthetic media with the fake detector."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analyzer.batch import run
from analyzer.config import AnalyzerConfig
from analyzer.records import FACE_SCHEMA, SOURCE_SCHEMA, read_part_metadata
from analyzer.runtime import Runtime
from emotion_contract.labels import EMOTIONS

from ..helpers import (
    CONSTANT_PROBS,
    blob_frame,
    make_video,
    moving_blob_video,
    write_image,
)

FACE_COLUMNS = [
    "source",
    "frame_index",
    "timestamp_s",
    "shot",
    "track_id",
    "x1",
    "y1",
    "x2",
    "y2",
    "det_score",
    "box_source",
    *EMOTIONS,
    "emotion",
    *[f"{e}_smoothed" for e in EMOTIONS],
    "emotion_smoothed",
    "person",
]


@pytest.fixture
def media(tmp_path):
    root = tmp_path / "in"
    (root / "nested" / "deeper").mkdir(parents=True)
    moving_blob_video(root / "clip.mp4", 30)
    moving_blob_video(root / "nested" / "deeper" / "two.mkv", 20, blobs=2)
    write_image(root / "nested" / "face.png", blob_frame(100, 100, [(20, 20, 40)]))
    write_image(root / "noface.jpg", blob_frame(100, 100, []))
    (root / "readme.txt").write_text("not media")
    return root


def make_runtime(tiny_model, **overrides) -> Runtime:
    return Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", **overrides)
    )


def test_schema_dtypes_and_probabilities(media, tmp_path, runtime):
    out = tmp_path / "out"
    summary = run([media], out, runtime, progress=False)
    assert not summary.failed
    faces = pd.read_parquet(out / "faces")
    assert list(faces.columns) == FACE_COLUMNS
    table = pq.read_table(out / "faces")
    assert table.schema.remove_metadata().equals(FACE_SCHEMA)
    np.testing.assert_allclose(faces[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(faces[list(EMOTIONS)].iloc[0], CONSTANT_PROBS, atol=1e-5)
    assert (faces["emotion"] == "happy").all()
    images = faces[faces["source"].str.endswith((".png", ".jpg"))]
    assert images["timestamp_s"].isna().all()
    # Null in the file, not NaN: readers other than pandas tell the two apart.
    stamps = table.column("timestamp_s")
    assert stamps.null_count == len(images) > 0
    assert not np.isnan(stamps.drop_null().to_numpy()).any()
    sources = pq.read_table(out / "sources.parquet")
    assert sources.schema.equals(SOURCE_SCHEMA)


def test_sources_table_tells_no_face_from_not_analyzed(media, tmp_path, runtime):
    out = tmp_path / "out"
    run([media], out, runtime, progress=False)
    sources = pd.read_parquet(out / "sources.parquet").set_index("source")
    assert sources.loc["readme.txt", "status"] == "skipped"
    assert sources.loc[
        "noface.jpg", ["status", "faces", "frames_analyzed"]
    ].tolist() == ["ok", 0, 1]
    clip = sources.loc["clip.mp4"]
    assert clip["frames_total"] == 30 and clip["frames_analyzed"] == 15  # 10 -> 5 fps
    frames = pd.read_parquet(out / "frames")
    assert frames[frames["source"] == "noface.jpg"]["faces"].tolist() == [0]
    assert len(frames[frames["source"] == "clip.mp4"]) == 15
    assert sources.loc["nested/deeper/two.mkv", "tracks"] == 2


def test_metadata_names_model_detector_sampling_version(media, tmp_path, runtime):
    out = tmp_path / "out"
    run([media], out, runtime, progress=False)
    part = next((out / "faces").glob("clip.mp4-*.parquet"))
    meta = read_part_metadata(part)
    assert meta["detector"] == "fake" and meta["sampling"] == "5 fps"
    assert meta["model_name"] == "constant-test-model"
    assert len(meta["model_sha256"]) == 64 and meta["package_version"]


def test_timestamps_come_from_presentation_times(tmp_path, tiny_model):
    # Variable frame rate: the gaps differ, so index / fps would be wrong.
    pts = [0, 100, 150, 400, 450, 1000, 1033, 1500]
    frames = [blob_frame(160, 120, [(20 + 3 * i, 30, 36)]) for i in range(len(pts))]
    make_video(tmp_path / "vfr.mkv", frames, fps=10, pts_ms=pts)
    out = tmp_path / "out"
    run(
        [tmp_path / "vfr.mkv"],
        out,
        make_runtime(tiny_model, sample_fps=None),
        progress=False,
    )
    ts = pd.read_parquet(out / "frames")["timestamp_s"].to_numpy()
    np.testing.assert_allclose(ts, np.array(pts) / 1000, atol=0.002)
    assert np.all(np.diff(ts) > 0)


def test_one_track_follows_one_moving_face(tmp_path, tiny_model):
    moving_blob_video(tmp_path / "clip.mp4", 40)
    out = tmp_path / "out"
    run(
        [tmp_path / "clip.mp4"],
        out,
        make_runtime(tiny_model, sample_fps=None),
        progress=False,
    )
    faces = pd.read_parquet(out / "faces")
    assert len(faces) == 40 and faces["track_id"].nunique() == 1


def test_rerun_skips_finished_sources_without_duplicates(media, tmp_path, runtime):
    out = tmp_path / "out"
    first = run([media], out, runtime, progress=False)
    rows = len(pd.read_parquet(out / "faces"))
    second = run([media], out, runtime, progress=False)
    assert second.reused == 4  # the four media files; readme.txt is only listed
    assert json.loads((out / "run.json").read_text())["complete"] is True
    assert len(pd.read_parquet(out / "faces")) == rows
    assert [r.faces for r in second.rows] == [r.faces for r in first.rows]


def test_changed_input_or_settings_is_analyzed_again(
    media, tmp_path, runtime, tiny_model
):
    out = tmp_path / "out"
    run([media], out, runtime, progress=False)
    moving_blob_video(media / "clip.mp4", 10)  # the file changes
    again = run([media], out, runtime, progress=False)
    assert again.reused == 3
    clip = next(r for r in again.rows if r.source == "clip.mp4")
    assert clip.frames_total == 10
    other = run([media], out, make_runtime(tiny_model, sample_fps=2.0), progress=False)
    assert other.reused == 0


def test_interrupted_run_leaves_no_partial_part_and_resumes(
    media, tmp_path, tiny_model, monkeypatch
):
    out = tmp_path / "out"
    runtime = make_runtime(tiny_model)
    calls = {"n": 0}
    real = runtime.detector.detect

    def dies_on_third_call(frames):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # like Ctrl-C or a kill in the middle of a source
        return real(frames)

    monkeypatch.setattr(runtime.detector, "detect", dies_on_third_call)
    with pytest.raises(KeyboardInterrupt):
        run([media], out, runtime, progress=False)
    finished = sorted(p.name for p in (out / "faces").iterdir())
    assert all(not name.startswith(".") for name in finished)  # no temporary files
    assert not (out / "sources.parquet").exists()
    assert json.loads((out / "run.json").read_text())["complete"] is False
    monkeypatch.undo()
    resumed = run([media], out, runtime, progress=False)
    assert resumed.reused == len(finished)
    faces = pd.read_parquet(out / "faces")
    assert not faces.duplicated(["source", "frame_index", "track_id"]).any()


def test_detector_runs_on_keyframes_only(tmp_path, tiny_model):
    moving_blob_video(tmp_path / "clip.mp4", 30, fps=10)
    runtime = make_runtime(
        tiny_model, sample_fps=None, detect_interval_s=0.5, detect_batch=1
    )
    run([tmp_path / "clip.mp4"], tmp_path / "out", runtime, progress=False)
    assert runtime.detector.calls == 6  # 3 s at one detection per 0.5 s
    faces = pd.read_parquet(tmp_path / "out" / "faces")
    assert len(faces) == 30 and faces["track_id"].nunique() == 1


def test_detection_on_downscaled_frames_maps_boxes_back(tmp_path, tiny_model):
    moving_blob_video(tmp_path / "clip.mp4", 5)
    out = {}
    for side in (0, 80):
        runtime = make_runtime(tiny_model, sample_fps=None, detect_max_side=side)
        run([tmp_path / "clip.mp4"], tmp_path / f"out{side}", runtime, progress=False)
        out[side] = pd.read_parquet(tmp_path / f"out{side}" / "faces")
    np.testing.assert_allclose(
        out[80][["x1", "y1", "x2", "y2"]], out[0][["x1", "y1", "x2", "y2"]], atol=2.5
    )


def test_a_classifier_error_fails_its_source_alone_with_nothing_written(
    tmp_path, tiny_model, monkeypatch
):
    # Batches are classified on a worker thread: its error must still reach the
    # source's row, and the part must not be left half written.
    root = tmp_path / "in"
    root.mkdir()
    moving_blob_video(root / "a.mp4", 40)
    moving_blob_video(root / "b.mp4", 40)
    runtime = make_runtime(tiny_model, sample_fps=None, batch_size=4)
    real, calls = runtime.classifier.predict, {"n": 0}

    def fails_once(crops):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("classifier exploded")
        return real(crops)

    monkeypatch.setattr(runtime.classifier, "predict", fails_once)
    summary = run([root], tmp_path / "out", runtime, progress=False)
    rows = {r.source: r for r in summary.rows}
    assert rows["a.mp4"].status == "failed"
    assert "classifier exploded" in rows["a.mp4"].error
    assert rows["b.mp4"].status == "ok" and rows["b.mp4"].faces == 40
    parts = [p.name for p in (tmp_path / "out" / "faces").iterdir()]
    assert len(parts) == 1 and parts[0].startswith("b.mp4")
    frames = pd.read_parquet(tmp_path / "out" / "frames")
    assert frames["frame_index"].tolist() == list(range(40))  # b's, in order
