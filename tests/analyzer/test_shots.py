"""Shot boundaries, honest carried rows and the shots table, on synthetic media."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzer.batch import run
from analyzer.config import AnalyzerConfig
from analyzer.runtime import Runtime
from analyzer.shots import ShotDetector
from emotion_contract.schema import BOX_SOURCES

from ..helpers import blob_frame, make_video


def _scene(seed: int, shape=(120, 160)) -> np.ndarray:
    """A textured colour scene; different seeds are different shots."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, shape[::-1], interpolation=cv2.INTER_LINEAR)


def _pan(scene: np.ndarray, dx: int) -> np.ndarray:
    return np.roll(scene, dx, axis=1)


@pytest.mark.parametrize(
    ("frames", "shots"),
    [
        ("static", [0, 0, 0, 0]),
        ("pan", [0, 0, 0, 0, 0, 0]),
        ("cut", [0, 0, 1, 1]),
        ("to_black_and_back", [0, 1, 1, 2]),
        ("size_change", [0, 0, 1]),
    ],
)
def test_shot_boundaries(frames, shots):
    a, b = _scene(1), _scene(2)
    black = np.zeros_like(a)
    clips = {
        "static": [a, a, a, a],
        "pan": [_pan(a, 4 * i) for i in range(6)],
        "cut": [a, _pan(a, 2), b, _pan(b, 2)],
        "to_black_and_back": [a, black, black, a],
        "size_change": [a, a, _scene(1, (240, 320))],
    }
    detector = ShotDetector()
    assert [detector.update(f) for f in clips[frames]] == shots


def _cut_video(path, fps=10):
    """1 s of a face (blob) on one background, then a cut to 1 s of another
    background with a face elsewhere."""
    first = [blob_frame(160, 120, [(20 + i, 30, 36)]) for i in range(fps)]
    second = [blob_frame(160, 120, [(100, 60 + i, 36)]) for i in range(fps)]
    for frame in second:
        frame[:, :, 0] = np.where(frame[:, :, 0] < 100, 120, frame[:, :, 0])
    return make_video(path, first + second, fps=fps)


def test_a_cut_ends_tracks_starts_a_shot_and_is_detected(tmp_path, tiny_model):
    clip = _cut_video(tmp_path / "cut.mp4")
    runtime = Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", sample_fps=None)
    )
    run([clip], tmp_path / "out", runtime, progress=False)
    faces = pd.read_parquet(tmp_path / "out" / "faces").sort_values("frame_index")
    frames = pd.read_parquet(tmp_path / "out" / "frames").sort_values("frame_index")
    assert frames["shot"].tolist() == [0] * 10 + [1] * 10
    assert (faces.groupby("track_id")["shot"].nunique() == 1).all()
    assert faces["track_id"].nunique() == 2
    first_of_shot = faces[faces["frame_index"].isin([0, 10])]
    assert (first_of_shot["box_source"] == "detected").all()
    shots = pd.read_parquet(tmp_path / "out" / "shots")
    assert shots[["shot", "first_frame", "last_frame", "frames"]].values.tolist() == [
        [0, 0, 9, 10],
        [1, 10, 19, 10],
    ]
    assert shots["start_s"].tolist() == pytest.approx([0.0, 1.0])
    assert shots["end_s"].tolist() == pytest.approx([0.9, 1.9])


def test_carried_rows_say_so_and_have_no_detector_score(tmp_path, tiny_model):
    frames = [blob_frame(160, 120, [(20 + 2 * i, 30, 36)]) for i in range(20)]
    clip = make_video(tmp_path / "a.mp4", frames, fps=10)
    runtime = Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", sample_fps=None)
    )
    run([clip], tmp_path / "out", runtime, progress=False)
    faces = pd.read_parquet(tmp_path / "out" / "faces").set_index("frame_index")
    detected = faces["box_source"] == "detected"
    assert (
        detected[[0, 10]].all() and (faces.loc[~detected, "box_source"] == "flow").all()
    )
    assert faces.loc[detected, "det_score"].notna().all()
    assert faces.loc[~detected, "det_score"].isna().all()
    assert set(faces["box_source"]) <= set(BOX_SOURCES)  # the schema's vocabulary


def test_a_face_that_leaves_is_dropped_at_once(tmp_path, tiny_model):
    """The blob vanishes at frame 4, between keyframes: no row carries it on."""
    frames = [
        blob_frame(160, 120, [(20 + 2 * i, 30, 36)] if i < 4 else []) for i in range(10)
    ]
    clip = make_video(tmp_path / "a.mp4", frames, fps=10)
    runtime = Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", sample_fps=None)
    )
    run([clip], tmp_path / "out", runtime, progress=False)
    faces = pd.read_parquet(tmp_path / "out" / "faces")
    assert sorted(faces["frame_index"]) == [0, 1, 2, 3]


def test_detection_filters_drop_small_and_unsure_faces(tmp_path, tiny_model):
    from ..helpers import write_image

    image = write_image(
        tmp_path / "two.png", blob_frame(200, 100, [(10, 10, 60), (120, 10, 20)])
    )
    for config, sides in (({"min_face": 0}, [20, 60]), ({}, [60])):
        runtime = Runtime.create(
            AnalyzerConfig(model=tiny_model, detector="fake", **config)
        )
        out = tmp_path / f"out{len(sides)}"
        run([image], out, runtime, progress=False)
        faces = pd.read_parquet(out / "faces")
        assert sorted((faces["x2"] - faces["x1"]).round().astype(int)) == sides
    runtime = Runtime.create(
        AnalyzerConfig(model=tiny_model, detector="fake", min_face=0, min_score=0.995)
    )
    run([image], tmp_path / "none", runtime, progress=False)
    assert len(pd.read_parquet(tmp_path / "none" / "faces")) == 0  # blobs score 0.99


@pytest.mark.parametrize(
    ("facts", "sample_fps", "expected"),
    [
        ({"frames_declared": 300, "fps": 30.0, "duration_s": 10.0}, None, 300),
        ({"fps": 30.0, "duration_s": 10.0}, None, 300),
        ({"frames_declared": 300, "fps": 30.0, "duration_s": 10.0}, 5.0, 50),
        ({"frames_declared": 300, "fps": 30.0}, 5.0, 50),
        ({}, 5.0, None),
    ],
)
def test_progress_total_counts_analyzed_frames(facts, sample_fps, expected):
    from analyzer.pipeline import expected_frames
    from analyzer.sources import VideoInfo

    assert expected_frames(VideoInfo(**facts), sample_fps) == expected
