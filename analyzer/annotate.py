"""Annotated videos: every frame of a source with its faces boxed and labelled.

Drawn from the rows the run committed (``faces/`` and ``frames/``), so the video
shows exactly what the tables say. Between two analyzed frames the last analyzed
frame's boxes are held, drawn with a thin line; on analyzed frames the line is
thick, so a viewer can tell a measured box from a carried one. Labels (track id,
top emotion, its probability) are drawn inside the box, so nothing outside the
boxes changes.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np

from emotion_contract.labels import EMOTION_COLORS, EMOTIONS
from emotion_contract.schema import ANNOTATED_DIR, FACES_DIR, FRAMES_DIR

from .sources import Source, SourceError, VideoInfo, iter_video

logger = logging.getLogger(__name__)

# H.264 plays inline in every browser; MPEG-4 part 2 is the fallback that every
# FFmpeg build has.
ENCODERS = ("libx264", "h264", "mpeg4")
TIME_BASE = Fraction(1, 90000)
PALETTE = (  # BGR, one per track id (mod len)
    (75, 25, 230),
    (75, 180, 60),
    (25, 225, 255),
    (200, 130, 0),
    (48, 130, 245),
    (180, 30, 145),
    (240, 240, 70),
    (230, 50, 240),
)


def annotated_name(part: str) -> str:
    """The annotated video's file name for a source's part name."""
    return Path(part).stem + ".mp4"


def pick_encoder() -> str:
    """The first encoder of :data:`ENCODERS` this FFmpeg build has."""
    import av

    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # PyAV raises UnknownCodecError or ValueError
            continue
    raise SourceError("this FFmpeg build has no H.264 or MPEG-4 encoder")


def load_boxes(out: Path, part: str) -> tuple[list[int], dict[int, list[tuple]]]:
    """The analyzed frames' indices, sorted, and each one's faces as
    ``(track_id, x1, y1, x2, y2, emotion, probability)``."""
    import pyarrow.parquet as pq

    frames = pq.read_table(out / FRAMES_DIR / part, columns=["frame_index"])
    analyzed = sorted(set(frames.column("frame_index").to_pylist()))
    cols = ["frame_index", "track_id", "x1", "y1", "x2", "y2", "emotion", *EMOTIONS]
    faces = pq.read_table(out / FACES_DIR / part, columns=cols).to_pydict()
    boxes: dict[int, list[tuple]] = defaultdict(list)
    for i, frame in enumerate(faces["frame_index"]):
        top = faces["emotion"][i]
        boxes[frame].append(
            (
                faces["track_id"][i],
                *(faces[c][i] for c in ("x1", "y1", "x2", "y2")),
                top,
                faces[top][i] if top in EMOTIONS else float("nan"),
            )
        )
    return analyzed, boxes


def draw_faces(image: np.ndarray, faces: list[tuple], *, measured: bool) -> None:
    """Box and label each face in place, every pixel drawn inside its box."""
    import cv2

    h, w = image.shape[:2]
    for track, x1, y1, x2, y2, emotion, probability in faces:
        a, b = int(max(0, round(x1))), int(max(0, round(y1)))
        c, d = int(min(w - 1, round(x2))), int(min(h - 1, round(y2)))
        if c - a < 4 or d - b < 4:
            continue
        color = PALETTE[int(track) % len(PALETTE)] if track is not None else (0, 0, 0)
        thickness = max(2, (c - a) // 60) if measured else 1
        # Drawn inward: a rectangle of thickness t covers t/2 on either side.
        inset = thickness // 2
        cv2.rectangle(
            image, (a + inset, b + inset), (c - inset, d - inset), color, thickness
        )
        label = f"#{track} {emotion} {probability:.2f}"
        # As large as fits the box's width, between 0.3 and 0.8 of the font's size.
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
        scale = max(0.3, min(0.8, (c - a - 6) / tw))
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        strip = min(d - b, th + base + 4)
        image[b : b + strip, a : c + 1] = color
        region = image[b : b + strip, a : c + 1]  # text clipped to the box
        cv2.putText(
            region,
            label,
            (2, strip - base - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def annotate_video(
    source: Source, out: Path, part: str, *, progress: bool = False
) -> Path:
    """Write ``OUT/annotated/<part>.mp4``: every frame of ``source`` at its own
    timing and size, faces from the committed rows. Written under a temporary name
    and renamed when complete.

    Raises:
        SourceError: the video cannot be decoded again, or no encoder exists.
    """
    import av
    from tqdm import tqdm

    analyzed, boxes = load_boxes(out, part)
    folder = out / ANNOTATED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / annotated_name(part)
    tmp = folder / f".{target.name}.tmp"
    encoder = pick_encoder()
    info = VideoInfo()
    frames = 0
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = None
            last_pts = -1
            for frame in tqdm(
                iter_video(source.path, info, sample_fps=None),
                desc=f"annotate {source.name[-30:]}",
                unit="frame",
                leave=False,
                disable=not progress,
            ):
                image = frame.image
                if stream is None:
                    stream = _open_stream(container, encoder, image.shape, info.fps)
                    start = frame.timestamp_s or 0.0
                at = bisect.bisect_right(analyzed, frame.index) - 1
                if at >= 0:
                    key = analyzed[at]
                    image = image.copy()
                    draw_faces(image, boxes.get(key, []), measured=key == frame.index)
                picture = av.VideoFrame.from_ndarray(image, format="bgr24")
                t = (frame.timestamp_s or 0.0) - start
                pts = max(last_pts + 1, round(t / TIME_BASE))
                picture.pts, picture.time_base = pts, TIME_BASE
                last_pts = pts
                for packet in stream.encode(picture):
                    container.mux(packet)
                frames += 1
            if stream is None:
                raise SourceError("no frames to annotate")
            for packet in stream.encode():
                container.mux(packet)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("%s: %d annotated frames with %s", target.name, frames, encoder)
    return target


def _open_stream(container, encoder: str, shape: tuple, fps: float | None):
    h, w = shape[:2]
    rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
    stream = container.add_stream(encoder, rate=rate)
    stream.width, stream.height = w, h
    # Frames keep their own times (variable frame rates included), in 1/90000 s.
    stream.codec_context.time_base = TIME_BASE
    stream.time_base = TIME_BASE
    # 4:2:0, what browsers play, needs even sides; odd-sized videos keep every
    # pixel in 4:4:4.
    even = w % 2 == 0 and h % 2 == 0
    stream.pix_fmt = "yuv420p" if even else "yuv444p"
    if encoder == "libx264":
        stream.options = {"crf": "20", "preset": "veryfast"}
    return stream


# The emotions' shared colours (emotion_contract.labels), in OpenCV's BGR order.
EMOTION_BGR = {
    e: tuple(int(c[k : k + 2], 16) for k in (5, 3, 1))
    for e, c in EMOTION_COLORS.items()
}


def draw_bars(image: np.ndarray, box, probs) -> None:
    """The seven probabilities as labelled bars on a dark panel beside ``box``
    (right of it, or left where the frame ends), for the live view."""
    import cv2

    h, w = image.shape[:2]
    step, width, label = 12, 60, 26
    panel_w, panel_h = label + width + 6, 7 * step + 4
    a, b, c = int(box[0]), int(max(0, box[1])), int(box[2])
    x = c + 4 if c + 4 + panel_w < w else a - 4 - panel_w
    if x < 0 or b + panel_h > h:
        return
    cv2.rectangle(image, (x, b), (x + panel_w, b + panel_h), (30, 30, 30), -1)
    for i, (name, p) in enumerate(zip(EMOTIONS, probs, strict=True)):
        y = b + 2 + i * step
        cv2.putText(
            image,
            name[:3],
            (x + 3, y + step - 3),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.33,
            (235, 235, 235),
            1,
            cv2.LINE_AA,
        )
        length = int(width * float(np.clip(p, 0, 1)))
        cv2.rectangle(
            image,
            (x + label, y + 2),
            (x + label + length, y + step - 2),
            EMOTION_BGR[name],
            -1,
        )
