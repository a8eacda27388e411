"""Rebuild the bundled sample media from scikit-image's astronaut photograph.

The photograph (Eileen Collins, NASA; public domain, shipped in scikit-image as
``skimage/data/astronaut.png``) becomes a still (``astronaut.jpg``) and a 6-second
clip (``astronaut_pan.mp4``) that pans and zooms over it, so the sample run has a
moving face to track.

    python samples/make_samples.py PATH/TO/astronaut.png
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
FPS, SECONDS, SIZE = 15, 6, (320, 240)


def pan_frames(image: np.ndarray):
    """Crops that drift across the photo and zoom in, resized to SIZE."""
    h, w = image.shape[:2]
    n = FPS * SECONDS
    for i in range(n):
        t = i / (n - 1)
        crop_w = int(w * (0.9 - 0.35 * t))  # zoom in over time
        crop_h = int(crop_w * SIZE[1] / SIZE[0])
        x = int((w - crop_w) * (0.1 + 0.3 * np.sin(np.pi * t)))
        y = int((h - crop_h) * 0.1 * t)
        yield cv2.resize(
            image[y : y + crop_h, x : x + crop_w], SIZE, interpolation=cv2.INTER_AREA
        )


def main(source: Path) -> None:
    image = cv2.imread(str(source))
    if image is None:
        sys.exit(f"cannot read {source}")
    cv2.imwrite(str(HERE / "astronaut.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 88])
    with av.open(
        str(HERE / "astronaut_pan.mp4"), "w", options={"movflags": "faststart"}
    ) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "26"}
        stream.codec_context.time_base = Fraction(1, FPS)
        for frame in pan_frames(image):
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(frame, format="bgr24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
