"""Integration tests on real clips from ../shared/media and on the bundled samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzer.batch import run
from analyzer.classifier import DEFAULT_MODEL
from analyzer.config import AnalyzerConfig
from analyzer.runtime import Runtime
from analyzer.tracking import iou_matrix

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


@pytest.mark.parametrize("refine", [False, True])
def test_carried_faces_between_keyframes(tmp_path, tiny_model, refine):
    """Every frame of the panning sample, one full detection a second: on the
    frames between, the carried face (flow, or flow then O-Net) stays where a
    detection on that frame puts it, in one track."""
    pan = SAMPLES / "astronaut_pan.mp4"
    boxes = {}
    for name, interval in (("carried", 1.0), ("detected", 0.0)):
        config = AnalyzerConfig(
            model=tiny_model, sample_fps=None, refine=refine, detect_interval_s=interval
        )
        summary = run([pan], tmp_path / name, Runtime.create(config), progress=False)
        assert not summary.failed
        faces = pd.read_parquet(tmp_path / name / "faces")
        assert len(faces) == 90 and faces["track_id"].nunique() == 1
        boxes[name] = faces.set_index("frame_index")[["x1", "y1", "x2", "y2"]]
    overlap = iou_matrix(boxes["carried"].to_numpy(), boxes["detected"].to_numpy())
    assert np.diag(overlap).min() > 0.75
    # The face moves and grows over the clip: carrying is not holding.
    detected = boxes["detected"]
    assert (detected.iloc[-1] - detected.iloc[0]).abs().max() > 15
