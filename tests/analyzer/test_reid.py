"""Re-identification: linking rules, sample choice, scores, the missing extra, and
dlib's descriptor on a small fixture of faces."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.reid import (
    DlibEmbedder,
    TrackSpan,
    choose_samples,
    link_tracks,
    pairwise_scores,
)
from emotion_contract.extras import MissingExtra

from ..conftest import MEDIA

ROOT = Path(__file__).resolve().parents[2]


def _vectors(*points):
    return {i: np.array(p, dtype=float) for i, p in enumerate(points)}


def test_tracks_that_overlap_in_time_are_never_one_person():
    spans = [TrackSpan(0, 0, 5), TrackSpan(1, 3, 8), TrackSpan(2, 9, 10)]
    same = _vectors([0, 0], [0, 0], [0, 0])
    persons = link_tracks(spans, same, threshold=0.5)
    assert persons[0] != persons[1]  # on screen together
    assert persons[2] in (persons[0], persons[1])


def test_threshold_and_complete_linkage():
    spans = [TrackSpan(i, 2 * i, 2 * i + 1) for i in range(3)]
    chain = _vectors([0, 0], [0.4, 0], [0.8, 0])  # a-b 0.4, b-c 0.4, a-c 0.8
    persons = link_tracks(spans, chain, threshold=0.5)
    assert len(set(persons.values())) == 2  # a-c too far: not all three
    assert len(set(link_tracks(spans, chain, threshold=0.3).values())) == 3
    assert len(set(link_tracks(spans, chain, threshold=0.9).values())) == 1
    assert persons[0] == 0  # numbered by first appearance
    assert link_tracks(spans, {}, threshold=0.5) == {}


def test_samples_are_large_sure_and_apart():
    t = np.array([0.0, 0.1, 0.2, 1.0, 2.0])
    side = np.array([100, 120, 50, 90, 80.0])
    score = np.array([0.99, 0.99, 0.99, 0.9, np.nan])
    picked = choose_samples(np.arange(5), t, side, score, k=3, min_gap_s=0.5)
    assert picked.tolist() == [1, 3]  # 0 is too close to 1; 4 has no score


def test_pairwise_scores():
    truth = {1: "A", 2: "A", 3: "B"}
    assert pairwise_scores({1: 0, 2: 0, 3: 1}, truth) == {
        "tracks": 3,
        "precision": 1.0,
        "recall": 1.0,
    }
    merged = pairwise_scores({1: 0, 2: 0, 3: 0}, truth)
    assert merged["precision"] == pytest.approx(1 / 3) and merged["recall"] == 1.0


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(MissingExtra, match=r"emotion-analytics\[reid\]"):
        DlibEmbedder()


@pytest.fixture(scope="module")
def face_fixture():
    """The sample photo's face, with its box from the shipped detector."""
    pytest.importorskip("dlib", reason="the [reid] extra is not installed")
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    image = cv2.imread(str(ROOT / "samples" / "astronaut.jpg"))
    faces = Runtime.create(AnalyzerConfig(detector="mtcnn")).detector.detect([image])
    return image, faces[0].boxes[:1]


@pytest.mark.slow
def test_one_face_stays_close_under_mirroring_and_darkening(face_fixture):
    image, box = face_fixture
    embedder = DlibEmbedder()
    base = embedder.embed(image, box)[0]
    w = image.shape[1]
    mirrored_box = box.copy()
    mirrored_box[:, [0, 2]] = w - box[:, [2, 0]]
    mirrored = embedder.embed(image[:, ::-1].copy(), mirrored_box)[0]
    darker = embedder.embed((image * 0.5).astype(np.uint8), box)[0]
    assert base.shape == (128,)
    assert np.linalg.norm(base - mirrored) < 0.5
    assert np.linalg.norm(base - darker) < 0.5
    if MEDIA.is_dir():  # another person: woman2.mp4's first frame
        from analyzer.sources import VideoInfo, iter_video

        frame = next(iter_video(MEDIA / "woman2.mp4", VideoInfo(), sample_fps=None))
        from analyzer.config import AnalyzerConfig
        from analyzer.runtime import Runtime

        other = (
            Runtime.create(AnalyzerConfig(detector="mtcnn"))
            .detector.detect([frame.image])[0]
            .boxes[:1]
        )
        assert np.linalg.norm(base - embedder.embed(frame.image, other)[0]) > 0.6
