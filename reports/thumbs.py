"""Thumbnails: a frame per source and a face crop per track, as small JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_contract.frames import video_frame


def read_frame(
    path: Path, kind: str, frame_index: int = 0, timestamp_s: float | None = None
) -> np.ndarray | None:
    """One BGR frame of an image or video as the analyzer saw it (the same frame
    numbering and upright picture), or ``None`` if it cannot be read."""
    import cv2

    if kind != "image":
        return video_frame(path, frame_index, timestamp_s)
    try:
        return cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    except (OSError, cv2.error):
        return None


def save_thumb(image: np.ndarray, dest: Path, width: int) -> bool:
    import cv2

    h, w = image.shape[:2]
    if not h or not w:
        return False
    scale = width / w
    small = cv2.resize(
        image, (width, max(1, int(h * scale))), interpolation=cv2.INTER_AREA
    )
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 82])
    if ok:
        dest.write_bytes(data.tobytes())
    return bool(ok)


def face_crop(frame: np.ndarray, box) -> np.ndarray:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    pad = int(0.15 * max(x2 - x1, y2 - y1))
    h, w = frame.shape[:2]
    return frame[
        max(0, y1 - pad) : min(h, y2 + pad), max(0, x1 - pad) : min(w, x2 + pad)
    ]
