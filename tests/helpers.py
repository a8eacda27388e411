"""Small factories for tests: synthetic media, a fake detector, a constant model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analyzer.faces import Faces
from emotion_contract.labels import EMOTIONS

# A constant model's output, in EMOTIONS order: recognisable in every row.
CONSTANT_PROBS = np.array([0.05, 0.02, 0.08, 0.50, 0.10, 0.15, 0.10], dtype=np.float32)


class BlobDetector:
    """Finds bright squares on a dark frame: a real detector for synthetic media."""

    name = "fake"

    def __init__(self, *, threshold: int = 128, fail_on_frame: int | None = None):
        self.threshold = threshold
        self.calls = 0

    def detect(self, frames: list[np.ndarray]) -> list[Faces]:
        import cv2

        self.calls += 1
        found = []
        for frame in frames:
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            n, _, stats, _ = cv2.connectedComponentsWithStats(
                (gray > self.threshold).astype(np.uint8)
            )
            boxes = [
                (x, y, x + w, y + h) for x, y, w, h, area in stats[1:n] if area >= 100
            ]
            found.append(
                Faces(
                    np.array(boxes, dtype=np.float32).reshape(-1, 4),
                    np.full(len(boxes), 0.99),
                )
            )
        return found

    can_check = True

    def face_scores(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """1 where most of a box is bright (a blob is still there), else 0."""
        gray = frame.mean(axis=2)
        scores = []
        for x1, y1, x2, y2 in np.asarray(boxes).astype(int):
            region = gray[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)]
            bright = (region > self.threshold).mean() if region.size else 0.0
            scores.append(1.0 if bright > 0.5 else 0.0)
        return np.array(scores, dtype=np.float32)


def blob_texture(side: int) -> np.ndarray:
    """A fixed bright texture (150-255) for a square: like a face, it gives optical
    flow something to follow, and it moves with its square."""
    rng = np.random.default_rng(side)
    coarse = rng.integers(150, 256, size=(side // 5 + 1, side // 5 + 1))
    texture = np.kron(coarse, np.ones((5, 5)))[:side, :side]
    return texture.astype(np.uint8)[..., None]


def blob_frame(width: int, height: int, boxes) -> np.ndarray:
    """A dark BGR frame with bright textured squares at ``boxes`` (x, y, side)."""
    frame = np.full((height, width, 3), 20, dtype=np.uint8)
    for x, y, side in boxes:
        region = frame[y : y + side, x : x + side]  # clipped at the frame's edges
        region[:] = blob_texture(side)[: region.shape[0], : region.shape[1]]
    return frame


def make_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int = 10,
    pts_ms: list[int] | None = None,
    codec: str = "libx264",
    faststart: bool = False,
    rotation: int = 0,
) -> Path:
    """Encode frames with PyAV; ``pts_ms`` sets presentation times (ms) explicitly,
    ``rotation`` a display rotation (degrees counter-clockwise) as phones store it."""
    from fractions import Fraction

    import av

    h, w = frames[0].shape[:2]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_blob_video(
    path: Path, n: int = 30, *, fps: int = 10, blobs: int = 1, faststart: bool = False
) -> Path:
    """A clip of ``blobs`` squares drifting right by 2 px a frame."""
    frames = [
        blob_frame(
            160, 120, [(10 + 2 * i + 70 * b, 30 + 10 * b, 36) for b in range(blobs)]
        )
        for i in range(n)
    ]
    return make_video(path, frames, fps=fps, faststart=faststart)


def write_image(path: Path, image: np.ndarray) -> Path:
    import cv2

    ok, data = cv2.imencode(".png" if path.suffix.lower() == ".png" else ".jpg", image)
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())
    return path


def constant_model(path: Path, *, class_names=EMOTIONS) -> Path:
    """A tiny Keras model that outputs CONSTANT_PROBS (reordered to class_names)."""
    import keras

    from emotion_contract.modelfile import ModelInfo, write_info

    probs = np.array([CONSTANT_PROBS[EMOTIONS.index(c)] for c in class_names])
    model = keras.Sequential(
        [
            keras.Input((48, 48, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                len(class_names),
                activation="softmax",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(np.log(probs)),
            ),
        ],
        name="constant",
    )
    model.save(path)
    write_info(
        path,
        ModelInfo(
            class_names=tuple(class_names),
            input_size=(48, 48),
            crop_margin=0.1,
            name="constant-test-model",
        ),
    )
    return path


# DivX's user data that flags "packed B-frames", and a not-coded P-VOP (the
# placeholder packet that follows a packed pair) for a time resolution of 25.
DIVX_PACKED = b"\x00\x00\x01\xb2DivX503b1393p"
NOT_CODED_VOP = b"\x00\x00\x01\xb6\x50\x4f"
VOP_START = b"\x00\x00\x01\xb6"


def packed_bframes_avi(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """An AVI as old DivX/Xvid archives hold it: MPEG-4 Part 2 with B-frames,
    each B-frame packed into the packet of the P-frame before it, followed by a
    placeholder packet, and the DivX flag that says so.

    The packets come from FFmpeg's MPEG-4 encoder (decode order I P B P B ...)
    and are reassembled here, since no encoder writes this packing.
    """
    from fractions import Fraction

    import av

    codec = av.CodecContext.create("mpeg4", "w")
    h, w = frames[0].shape[:2]
    codec.width, codec.height, codec.pix_fmt = w, h, "yuv420p"
    codec.time_base, codec.framerate = Fraction(1, fps), Fraction(fps, 1)
    codec.max_b_frames, codec.gop_size = 1, 12
    packets = []
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    first_vop = packets[0].index(VOP_START)
    packets[0] = packets[0][:first_vop] + DIVX_PACKED + packets[0][first_vop:]
    kind = [p[p.index(VOP_START) + 4] >> 6 for p in packets]  # 0 I, 1 P, 2 B
    chunks, i = [], 0
    while i < len(packets):
        if kind[i] == 1 and i + 1 < len(packets) and kind[i + 1] == 2:
            chunks += [packets[i] + packets[i + 1], NOT_CODED_VOP]
            i += 2
        else:
            chunks.append(packets[i])
            i += 1
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = w, h
        stream.codec_context.codec_tag = "XVID"
        for n, data in enumerate(chunks):
            packet = av.Packet(data)
            packet.pts = packet.dts = n
            packet.time_base, packet.stream = Fraction(1, fps), stream
            packet.is_keyframe = n == 0
            out.mux(packet)
    return path
