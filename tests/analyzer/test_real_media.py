"""Integration tests on real clips from ../shared/media and on the bundled samples."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analyzer.classifier import DEFAULT_MODEL
from analyzer.config import AnalyzerConfig
from analyzer.pipeline import Runtime, run

from ..conftest import MEDIA

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
WOMAN2 = MEDIA / "woman2.mp4"

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not WOMAN2.exists(), reason="../shared/media is absent")
def test_woman2_one_face_one_track(tmp_path, tiny_model):
    runtime = Runtime.create(AnalyzerConfig(model=tiny_model))  # default detector
    summary = run([WOMAN2], tmp_path / "out", runtime, progress=False)
    assert not summary.failed
    frames = pd.read_parquet(tmp_path / "out" / "frames")
    faces = pd.read_parquet(tmp_path / "out" / "faces")
    assert len(frames) >= 75  # 15.5 s at 5 fps
    assert (frames["faces"] == 1).mean() >= 0.95
    assert faces["track_id"].value_counts().iloc[0] / len(faces) >= 0.90


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no bundled model")
def test_samples_with_bundled_model(tmp_path):
    runtime = Runtime.create(AnalyzerConfig())
    summary = run([SAMPLES], tmp_path / "out", runtime, progress=False)
    assert not summary.failed
    faces = pd.read_parquet(tmp_path / "out" / "faces")
    assert set(faces["source"]) == {"astronaut.jpg", "astronaut_pan.mp4"}
    video = faces[faces["source"] == "astronaut_pan.mp4"]
    assert video["track_id"].nunique() == 1 and len(video) == 30
