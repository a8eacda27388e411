"""Decode ahead on a background thread, bounded in frames and in bytes."""

from __future__ import annotations

from collections.abc import Iterator

from .sources import Frame

_DONE = object()

PREFETCH_BYTES = 128 * 2**20
PREFETCH_FRAMES = 256


def prefetch(
    frames: Iterator[Frame],
    *,
    max_frames: int = PREFETCH_FRAMES,
    max_bytes: int = PREFETCH_BYTES,
) -> Iterator[Frame]:
    """Decode on a background thread, ahead of the consumer, in the same order.

    FFmpeg releases the GIL while decoding, so decoding overlaps detection and
    classification. The consumer works in bursts (a batch of keyframes, then a
    batch of crops), so the decoder is allowed far ahead: up to ``max_frames``
    frames and ``max_bytes`` of pixels (at least one frame), which is about 200
    frames of 640x360 but 20 of 1080p. An exception in the decoder is raised here,
    in the consumer.
    """
    import threading
    from collections import deque

    held: deque = deque()
    state = {"bytes": 0, "stop": False}
    changed = threading.Condition()

    def nbytes(item) -> int:
        return getattr(getattr(item, "image", None), "nbytes", 0)

    def room_for(size: int) -> bool:
        if not held:
            return True
        return len(held) < max_frames and state["bytes"] + size <= max_bytes

    def produce() -> None:
        try:
            for frame in frames:
                size = nbytes(frame)
                with changed:
                    changed.wait_for(lambda n=size: state["stop"] or room_for(n))
                    if state["stop"]:
                        return
                    held.append(frame)
                    state["bytes"] += size
                    changed.notify_all()
            item = _DONE
        except BaseException as exc:  # handed to the consumer, raised there
            item = exc
        with changed:
            held.append(item)
            changed.notify_all()

    thread = threading.Thread(target=produce, name="decoder", daemon=True)
    thread.start()
    try:
        while True:
            with changed:
                changed.wait_for(lambda: bool(held))
                item = held.popleft()
                state["bytes"] -= nbytes(item)
                changed.notify_all()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        with changed:
            state["stop"] = True
            changed.notify_all()
        thread.join(timeout=5.0)
