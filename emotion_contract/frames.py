"""What ``frame_index`` and ``timestamp_s`` point at: the writer's and readers' terms.

The analyzer numbers a video's frames in display order from 0 and times them by
their presentation time (AVI, which stores none, by the frame rate); boxes are in
the pixels of the upright picture, a display rotation applied. :func:`video_frame`
reads a frame back on those terms (the reports' thumbnails use it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def upright_turns(rotation: float | None) -> int:
    """Quarter turns counter-clockwise that make a picture upright, from the
    display rotation PyAV reads from the container (degrees counter-clockwise)."""
    return round((rotation or 0) / 90) % 4


def upright(image: np.ndarray, rotation: float | None) -> np.ndarray:
    """``image`` as it is meant to be shown."""
    turns = upright_turns(rotation)
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def video_frame(
    path: Path, frame_index: int, timestamp_s: float | None = None
) -> np.ndarray | None:
    """The upright BGR frame at ``frame_index`` (found by ``timestamp_s`` after a
    seek, when given and the container stores times), or ``None``."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            start = stream.start_time or 0
            timed = (
                timestamp_s is not None
                and stream.time_base is not None
                and container.format.name != "avi"
            )
            if timed:
                target = start + int(timestamp_s / stream.time_base)
                container.seek(target, stream=stream, backward=True)
            for index, frame in enumerate(container.decode(stream)):
                if timed and frame.pts is not None:
                    t = float((frame.pts - start) * stream.time_base)
                    hit = t >= timestamp_s - 1e-3
                else:
                    hit = not timed and index == frame_index
                if hit:
                    return upright(frame.to_ndarray(format="bgr24"), frame.rotation)
    except (OSError, av.error.FFmpegError, IndexError):
        return None
    return None
