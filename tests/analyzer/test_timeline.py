"""Emotions over time: the smoother, episodes, and the tables they fill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzer.batch import run
from analyzer.config import AnalyzerConfig
from analyzer.runtime import Runtime
from analyzer.timeline import analyse, runs, smooth_series
from emotion_contract.labels import EMOTIONS
from emotion_contract.schema import EPISODE_SCHEMA, TRACK_SCHEMA

from ..helpers import blob_frame, make_video, moving_blob_video, write_image

HAPPY, SAD, NEUTRAL = (EMOTIONS.index(e) for e in ("happy", "sad", "neutral"))


def _series(labels, confidence=0.6) -> np.ndarray:
    probs = np.full((len(labels), 7), (1 - confidence) / 6, np.float32)
    probs[np.arange(len(labels)), labels] = confidence
    return probs


def _kernel(t, probs, half_life):
    """The smoother's definition, computed directly (O(n^2))."""
    w = np.exp2(-np.abs(t[:, None] - t[None, :]) / half_life)
    return (w @ probs) / w.sum(1, keepdims=True)


def test_a_step_change_stays_where_it_is():
    t = np.arange(20) / 5.0
    labels = [HAPPY] * 10 + [SAD] * 10
    smoothed = smooth_series(t, _series(labels), 0.5)
    assert list(smoothed.argmax(1)) == labels


def test_a_one_frame_blip_is_smoothed_away():
    t = np.arange(21) / 5.0
    labels = [HAPPY] * 10 + [SAD] + [HAPPY] * 10
    raw = _series(labels)
    smoothed = smooth_series(t, raw, 0.5)
    assert (smoothed.argmax(1) == HAPPY).all()
    assert smooth_series(t, raw, 0.0) is not raw  # a copy, unchanged
    np.testing.assert_array_equal(smooth_series(t, raw, 0.0), raw)


def test_a_gap_much_longer_than_the_half_life_keeps_the_sides_apart():
    t = np.concatenate([np.arange(10) / 5.0, 12 + np.arange(10) / 5.0])
    probs = _series([HAPPY] * 10 + [SAD] * 10)
    smoothed = smooth_series(t, probs, 0.5)
    np.testing.assert_allclose(smoothed[:10], probs[:10], atol=1e-6)
    np.testing.assert_allclose(smoothed[10:], probs[10:], atol=1e-6)


def test_irregular_timestamps_weigh_by_time_not_by_row():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.01, 0.6, 40))
    probs = rng.dirichlet(np.ones(7), 40).astype(np.float32)
    for half_life in (0.1, 0.5, 2.0):
        np.testing.assert_allclose(
            smooth_series(t, probs, half_life), _kernel(t, probs, half_life), atol=1e-5
        )


def _columns(t, labels, *, shot=None, track=None, frames=None):
    n = len(t)
    probs = _series(labels)
    return {
        "frame_index": np.arange(n) if frames is None else np.asarray(frames),
        "timestamp_s": np.asarray(t, dtype=np.float64),
        "shot": np.zeros(n, np.int64) if shot is None else np.asarray(shot),
        "track_id": np.ones(n, np.int64) if track is None else np.asarray(track),
        **{e: probs[:, i] for i, e in enumerate(EMOTIONS)},
    }


def test_the_smoother_never_crosses_a_shot_cut():
    t = np.arange(20) / 5.0
    shot = [0] * 10 + [1] * 10  # the same track id on both sides
    cols = _columns(t, [HAPPY] * 10 + [SAD] * 10, shot=shot)
    found = analyse(
        "v",
        cols,
        half_life_s=5.0,
        min_episode_s=0,
        step_s=0.2,
        frame_indices=np.arange(20),
    )
    raw = np.stack([cols[e] for e in EMOTIONS], 1)
    np.testing.assert_allclose(found.smoothed, raw, atol=1e-6)
    assert [(r["shot"], r["emotion"]) for r in found.tracks] == [
        (0, "happy"),
        (1, "sad"),
    ]


def test_short_runs_merge_into_their_longer_neighbour():
    d = np.full(10, 0.2)  # ten rows of 0.2 s
    # happy 0.6 s, neutral 0.2 s, sad 0.4 s, happy 0.8 s
    labels = np.array([HAPPY] * 3 + [NEUTRAL] + [SAD] * 2 + [HAPPY] * 4)
    assert runs(labels, d, 0.0) == [
        [HAPPY, 0, 3],
        [NEUTRAL, 3, 4],
        [SAD, 4, 6],
        [HAPPY, 6, 10],
    ]
    # Neutral (0.2) goes first, into happy (0.6 > 0.4), which makes 0.8; then sad
    # (0.4), between two happy runs of 0.8, into the earlier; all one run.
    assert runs(labels, d, 0.5) == [[HAPPY, 0, 10]]
    assert runs(labels, d, 0.3) == [[HAPPY, 0, 4], [SAD, 4, 6], [HAPPY, 6, 10]]
    assert runs(np.array([SAD]), np.array([0.1]), 5.0) == [[SAD, 0, 1]]


def test_episode_rows_of_a_hand_made_series():
    t = np.arange(15) / 5.0  # 3 s at 5 fps
    labels = [HAPPY] * 5 + [SAD] * 10
    found = analyse(
        "clip.mp4",
        _columns(t, labels),
        half_life_s=0,
        min_episode_s=0.5,
        step_s=0.2,
        frame_indices=np.arange(15),
    )
    ep = pd.DataFrame(found.episodes)
    assert list(ep["emotion"]) == ["happy", "sad"]
    np.testing.assert_allclose(ep["start_s"], [0.0, 1.0])
    np.testing.assert_allclose(ep["end_s"], [1.0, 3.0])  # the last row lasts a step
    np.testing.assert_allclose(ep["duration_s"], [1.0, 2.0])
    assert list(ep["frames"]) == [5, 10]
    np.testing.assert_allclose(ep["mean_probability"], 0.6, atol=1e-6)
    np.testing.assert_allclose(ep["peak_probability"], 0.6, atol=1e-6)
    (track,) = found.tracks
    assert track["emotion"] == "sad" and track["faces"] == 15
    assert track["sad_share"] == pytest.approx(2 / 3)
    assert track["happy_share"] == pytest.approx(1 / 3)
    assert (track["first_s"], track["last_s"]) == (0.0, 2.8)


def test_track_frames_count_analyzed_frames_in_its_span():
    # Seen on frames 0, 1 and 4 of 0..5: lost for two analyzed frames.
    cols = _columns([0.0, 0.2, 0.8], [HAPPY] * 3, frames=[0, 1, 4])
    found = analyse(
        "v",
        cols,
        half_life_s=0.5,
        min_episode_s=0,
        step_s=0.2,
        frame_indices=np.arange(6),
    )
    assert (found.tracks[0]["frames"], found.tracks[0]["faces"]) == (5, 3)


def _runtime(tiny_model, **settings):
    config = AnalyzerConfig(model=tiny_model, detector="fake", **settings)
    return Runtime.create(config)


def test_tables_have_their_schemas_and_resume(tmp_path, tiny_model):
    media = tmp_path / "in"
    media.mkdir()
    moving_blob_video(media / "two.mp4", 30, blobs=2)
    write_image(media / "photo.png", blob_frame(120, 90, [(20, 20, 40)]))
    out = tmp_path / "out"
    summary = run([media], out, _runtime(tiny_model), progress=False)
    assert not summary.failed
    episodes = pd.read_parquet(out / "episodes")
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert list(episodes.columns) == EPISODE_SCHEMA.names
    assert list(tracks.columns) == TRACK_SCHEMA.names
    assert sorted(set(episodes["source"])) == ["two.mp4"]  # videos only
    assert len(tracks) == 3 and len(episodes) == 2  # the constant model: one each
    photo = tracks[tracks["source"] == "photo.png"].iloc[0]
    assert pd.isna(photo["first_s"]) and photo["faces"] == 1
    faces = pd.read_parquet(out / "faces")
    assert (faces["emotion_smoothed"] == faces["emotion"]).all()
    np.testing.assert_allclose(faces["happy_smoothed"], faces["happy"], atol=1e-6)

    again = run([media], out, _runtime(tiny_model), progress=False)
    assert again.reused == 2
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tracks.parquet"), tracks)
    changed = run([media], out, _runtime(tiny_model, smooth_s=2.0), progress=False)
    assert changed.reanalyzed == {"settings changed": 2}


def test_a_video_without_faces_has_an_empty_episodes_part(tmp_path, tiny_model):
    media = tmp_path / "in"
    media.mkdir()
    make_video(media / "empty.mp4", [np.zeros((90, 120, 3), np.uint8)] * 10, fps=10)
    out = tmp_path / "out"
    run([media], out, _runtime(tiny_model), progress=False)
    assert len(list((out / "episodes").glob("*.parquet"))) == 1
    assert len(pd.read_parquet(out / "episodes")) == 0
    assert len(pd.read_parquet(out / "tracks.parquet")) == 0
