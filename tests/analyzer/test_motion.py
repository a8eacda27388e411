"""Box propagation with optical flow between keyframes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analyzer.motion import BoxFlow


def _texture(h: int = 240, w: int = 320) -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 256, (h, w)).astype(np.uint8)
    grey = cv2.GaussianBlur(noise, (0, 0), 2.0)
    grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _warp(image: np.ndarray, zoom: float, dx: float, dy: float, centre) -> np.ndarray:
    affine = cv2.getRotationMatrix2D(centre, 0.0, zoom)
    affine[:, 2] += (dx, dy)
    size = image.shape[1::-1]
    return cv2.warpAffine(image, affine, size, borderMode=cv2.BORDER_REFLECT)


BOX = np.array([[100.0, 60.0, 180.0, 160.0]])


def test_a_shift_moves_the_box_by_the_shift():
    first = _texture()
    flow = BoxFlow()
    flow.reset(first)
    moved, ok = flow.step(_warp(first, 1.0, 6.0, -4.0, (140, 110)), BOX)
    assert moved[0] == pytest.approx(BOX[0] + [6, -4, 6, -4], abs=0.5)
    assert ok.tolist() == [True]


def test_a_zoom_scales_the_box_about_its_centre():
    first = _texture()
    flow = BoxFlow()
    flow.reset(first)
    moved = flow.step(_warp(first, 1.1, 0.0, 0.0, (140, 110)), BOX)[0][0]
    assert (moved[2] - moved[0]) / 80 == pytest.approx(1.1, abs=0.03)
    assert (moved[3] - moved[1]) / 100 == pytest.approx(1.1, abs=0.03)
    assert (moved[0] + moved[2]) / 2 == pytest.approx(140, abs=1.0)


def test_steps_chain_from_frame_to_frame():
    first = _texture()
    flow = BoxFlow()
    flow.reset(first)
    boxes = BOX
    for step in range(1, 4):
        boxes, _ = flow.step(_warp(first, 1.0, 3.0 * step, 0.0, (140, 110)), boxes)
    assert boxes[0] == pytest.approx(BOX[0] + [9, 0, 9, 0], abs=0.8)


def test_without_texture_the_move_fails_and_the_box_stays():
    flat = np.full((240, 320, 3), 128, np.uint8)
    flow = BoxFlow()
    flow.reset(flat)
    moved, ok = flow.step(flat, BOX)
    assert moved == pytest.approx(BOX)
    assert ok.tolist() == [False]


def test_large_frames_are_tracked_downscaled_with_boxes_in_frame_pixels():
    first = cv2.resize(_texture(), (1280, 960))
    flow = BoxFlow(max_side=640)
    flow.reset(first)
    box = BOX * 4
    moved, _ = flow.step(_warp(first, 1.0, 20.0, 8.0, (560, 440)), box)
    assert moved[0] == pytest.approx(box[0] + [20, 8, 20, 8], abs=2.0)
