"""The LiteRT MTCNN cascade: its parts, and its faces against the mtcnn package's."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer import litert
from analyzer.detectors.mtcnn import MtcnnDetector, _normalize, nms, pyramid
from analyzer.tracking import iou_matrix

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_normalize_is_exactly_the_packages_scaling():
    rgb = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    out = _normalize(rgb)
    assert out.dtype == np.float32 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, (rgb.astype(np.float32) - 127.5) / 128.0)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array(
        [
            [0, 0, 10, 10, 0.8],
            [1, 1, 11, 11, 0.9],  # overlaps the first: IoU 0.68
            [50, 50, 60, 60, 0.7],
        ]
    )
    assert nms(boxes, 0.5).tolist() == [1, 2]
    assert nms(boxes, 0.7).tolist() == [1, 0, 2]


def test_nms_min_drops_a_box_inside_a_larger_one():
    boxes = np.array([[0, 0, 100, 100, 0.9], [10, 10, 30, 30, 0.8]])
    assert nms(boxes, 0.7, "union").tolist() == [0, 1]  # IoU 0.04
    assert nms(boxes, 0.7, "min").tolist() == [0]  # all of the small one overlaps


def test_nms_never_suppresses_across_frames():
    same_place = np.array([[0, 0, 10, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 1]])
    assert sorted(nms(same_place, 0.5).tolist()) == [0, 1]
    assert nms(same_place[:, :5], 0.5).tolist() == [0]


def test_pyramid_covers_faces_from_20_px_to_the_whole_frame():
    scales = pyramid(336, 596)
    assert scales[0] == pytest.approx(12 / 20)
    ratios = np.array(scales[1:]) / np.array(scales[:-1])
    assert ratios == pytest.approx(0.709)
    assert 336 * scales[-1] >= 12 > 336 * scales[-1] * 0.709


def _sample_frames() -> list[np.ndarray]:
    frames = [cv2.imread(str(SAMPLES / "astronaut.jpg"))]
    video = cv2.VideoCapture(str(SAMPLES / "astronaut_pan.mp4"))
    index = 0
    while len(frames) < 9:
        ok, frame = video.read()
        if not ok:
            break
        if index % 10 == 0:
            frames.append(frame)
        index += 1
    return frames


@pytest.mark.skipif(not litert.available(), reason="LiteRT is not installed")
def test_litert_cascade_finds_the_package_faces():
    """Every face the mtcnn package finds, a few pixels apart; few extra faces.

    The two cascades differ in resampling and suppression details, so a borderline
    candidate can pass in one and not the other (here: one patch of the
    astronaut's suit at 0.92 confidence).
    """
    frames = _sample_frames()
    assert len(frames) == 9
    fast = MtcnnDetector(runtime="litert")
    reference = MtcnnDetector(runtime="keras")
    assert (fast.runtime, reference.runtime) == ("litert", "keras")
    ious, ours_total = [], 0
    for ours, theirs in zip(fast.detect(frames), reference.detect(frames), strict=True):
        assert len(theirs) == 1
        ours_total += len(ours)
        overlap = iou_matrix(ours.boxes, theirs.boxes)[:, 0]
        best = int(overlap.argmax())
        ious.append(overlap[best])
        assert abs(ours.scores[best] - theirs.scores[0]) < 0.01
    assert min(ious) > 0.75 and np.mean(ious) > 0.9, ious
    assert len(frames) / ours_total >= 0.9  # precision against the package


def _no_conversion(*args, **kwargs):
    raise AssertionError("a network was converted")


@pytest.mark.skipif(not litert.available(), reason="LiteRT is not installed")
def test_the_shipped_copies_are_used_without_converting(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOTION_ANALYZER_CACHE", str(tmp_path))
    monkeypatch.setattr(litert, "_convert", _no_conversion)
    detector = MtcnnDetector(runtime="litert")
    assert detector.detect([np.zeros((64, 64, 3), np.uint8)])[0].boxes.shape == (0, 4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not litert.available(), reason="LiteRT is not installed")
def test_without_shipped_copies_they_are_converted_once(monkeypatch, tmp_path):
    from analyzer.detectors import mtcnn

    monkeypatch.setenv("EMOTION_ANALYZER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mtcnn, "BUNDLED", tmp_path / "none")
    MtcnnDetector(runtime="litert")
    assert len(list((tmp_path / "cache").glob("*.tflite"))) == 3
    monkeypatch.setattr(litert, "_convert", _no_conversion)
    again = MtcnnDetector(runtime="litert")
    assert again.detect([np.zeros((64, 64, 3), np.uint8)])[0].boxes.shape == (0, 4)


@pytest.mark.skipif(not litert.available(), reason="LiteRT is not installed")
def test_refine_re_places_a_carried_box_and_drops_a_lost_face():
    from analyzer.faces import Faces

    image = _sample_frames()[0]
    detector = MtcnnDetector(runtime="litert")
    (found,) = detector.detect([image])
    face = found.boxes[[int(found.scores.argmax())]]
    carried = face + np.array([6, -5, 6, -5], np.float32)  # off by a few px
    background = np.array([[400, 400, 480, 480]], np.float32)  # no face there
    faces = Faces(
        np.concatenate([carried, background]),
        np.array([0.99, 0.99], np.float32),
        np.array([7, 8]),
    )
    refined = detector.refine(image, faces)
    assert refined.track_ids.tolist() == [7]
    assert iou_matrix(refined.boxes, face)[0, 0] > 0.85
    assert (
        iou_matrix(refined.boxes, found.boxes)[0, 0]
        > iou_matrix(carried, found.boxes)[0, 0]
    )


@pytest.mark.skipif(not litert.available(), reason="LiteRT is not installed")
def test_interpreters_per_shape_are_bounded(monkeypatch):
    from analyzer.detectors import mtcnn

    monkeypatch.setattr(mtcnn, "MAX_INTERPRETERS", 5)
    detector = MtcnnDetector(runtime="litert")
    for side in range(40, 200, 20):  # photos of many sizes
        detector.detect([np.zeros((side, side + 10, 3), np.uint8)])
    assert len(detector._impl._nets) <= 5


@pytest.mark.skipif(not litert.available(), reason="LiteRT is not installed")
def test_a_batch_of_mixed_sizes_finds_what_each_frame_finds_alone():
    """P-Net runs frame by frame; R-Net and O-Net take every frame's candidates
    together, which must not mix up whose face is whose."""
    import cv2

    photo, first, second, third = _sample_frames()[:4]
    small = cv2.resize(second, None, fx=0.75, fy=0.75)
    batch = [first, small, photo, third]
    assert first.shape == third.shape != small.shape
    detector = MtcnnDetector(runtime="litert")
    together = detector.detect(batch)
    for frame, faces in zip(batch, together, strict=True):
        (alone,) = detector.detect([frame])
        np.testing.assert_allclose(faces.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(faces.scores, alone.scores, atol=1e-5)
    assert all(len(f) for f in together)
