"""Live analysis: a camera, a stream or a paced file, analyzed as it plays.

    python -m analyzer.live SOURCE --out OUT [--realtime] [--serve [HOST:]PORT]

The same detector, tracker and classifier as batch runs (:class:`KeyframeScheduler`
with a detection every ``--detect-interval`` and optical flow between), driven one
frame at a time: a reader thread decodes the source and keeps only the newest
frame, so when analysis falls behind, stale frames are dropped (and counted), never
queued. Rows go to ``OUT/faces/`` and ``OUT/frames/`` with the batch columns plus
``wall_time_s`` and ``segment``, committed as a new part every ``--part-seconds``
under a temporary name and renamed, so a reader never sees half a file. Ctrl-C or
SIGTERM commits the last part and records how the run ended in ``OUT/run.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import math
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from emotion_contract.labels import EMOTIONS
from emotion_contract.schema import (
    FACE_SCHEMA,
    FACES_DIR,
    FRAME_SCHEMA,
    FRAMES_DIR,
    LIVE_COLUMNS,
    SMOOTHED,
)

from .outdir import write_json
from .records import write_table

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 30.0
LIVE_FACE_SCHEMA = pa.schema([*FACE_SCHEMA, *(pa.field(*c) for c in LIVE_COLUMNS)])
LIVE_FRAME_SCHEMA = pa.schema([*FRAME_SCHEMA, *(pa.field(*c) for c in LIVE_COLUMNS)])


@dataclass(frozen=True)
class Arrival:
    """When and from which connection a frame came, beside the frame itself."""

    wall_time_s: float  # time.time() when the reader had it
    monotonic: float  # time.monotonic() at the same moment, for latencies
    segment: int


# ---------------------------------------------------------------- the newest frame


class LatestFrame:
    """A one-slot mailbox: ``put`` replaces an unread frame (a drop), ``get`` waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self.dropped = 0
        self.closed: str | None = None  # why no more frames will come

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def close(self, reason: str) -> None:
        with self._cond:
            self.closed = reason
            self._cond.notify_all()

    def get(self, timeout: float):
        """The newest unread frame, or ``None`` after ``timeout`` or once closed
        and drained."""
        with self._cond:
            if self._item is None and self.closed is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


def open_source(spec: str, timeout_s: float):
    """Open a camera (``0``, ``/dev/video0``), a URL or a file with FFmpeg."""
    import av

    if spec.isdigit():
        spec = f"/dev/video{spec}"
    if spec.startswith("/dev/video"):
        return av.open(spec, format="v4l2", timeout=timeout_s)
    return av.open(spec, timeout=(timeout_s, timeout_s))


class Reader(threading.Thread):
    """Decodes the source into a :class:`LatestFrame`, reopening it on loss.

    With ``realtime`` a file is paced at its own timestamps (a camera or a stream
    paces itself). With ``reconnect`` the end of the stream or an error reopens it
    after a back-off that doubles from 0.5 s to 30 s (reset once frames flow
    again); each opening is a new ``segment``, and ``gaps`` records each loss.
    """

    def __init__(
        self,
        spec: str,
        slot: LatestFrame,
        *,
        realtime: bool,
        reconnect: bool,
        timeout_s: float,
    ) -> None:
        super().__init__(name="live-reader", daemon=True)
        self.spec, self.slot = spec, slot
        self.realtime, self.reconnect, self.timeout_s = realtime, reconnect, timeout_s
        self.stopping = threading.Event()
        self.received = 0
        self.segment = 0
        self.gaps: list[dict] = []
        self.info: dict = {}

    def run(self) -> None:
        backoff = BACKOFF_START_S
        while not self.stopping.is_set():
            before, error = self.received, None
            try:
                self._play()
            except Exception as exc:  # FFmpeg's errors, a closed socket, ...
                error = f"{type(exc).__name__}: {exc}"
            if self.stopping.is_set():
                break
            lost = "end of stream" if error is None else error
            if not self.reconnect:
                self.slot.close(lost)
                return
            if self.received > before:
                backoff = BACKOFF_START_S
            self.gaps.append(
                {
                    "segment": self.segment,
                    "lost_wall_time_s": round(time.time(), 3),
                    "reason": lost,
                    "retry_after_s": backoff,
                }
            )
            logger.warning("%s: %s; reopening in %.1f s", self.spec, lost, backoff)
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self.segment += 1
        self.slot.close("stopped")

    def _play(self) -> None:
        from analyzer.sources import BgrConverter, Frame
        from emotion_contract.frames import upright, upright_turns

        with open_source(self.spec, self.timeout_s) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate
            self.info = {
                "fps": float(rate) if rate else None,
                "width": stream.codec_context.width,
                "height": stream.codec_context.height,
            }
            to_bgr = BgrConverter()
            first_t = started = None
            for picture in container.decode(stream):
                if self.stopping.is_set():
                    return
                t = picture.time
                if self.realtime and t is not None:
                    if first_t is None:
                        first_t, started = t, time.monotonic()
                    delay = started + (t - first_t) - time.monotonic()
                    if delay > 0 and self.stopping.wait(delay):
                        return
                image = upright(to_bgr(picture), picture.rotation)
                if picture.rotation and "rotation" not in self.info:
                    # Phones store the picture sideways with a display rotation.
                    self.info["rotation"] = upright_turns(picture.rotation) * 90
                    self.info["height"], self.info["width"] = image.shape[:2]
                arrival = Arrival(time.time(), time.monotonic(), self.segment)
                self.slot.put((Frame(self.received, t, image), arrival))
                self.received += 1


# ---------------------------------------------------------------- rows and parts


class CausalSmoother:
    """Each track's probabilities averaged over its past with weights halving every
    ``half_life_s`` by timestamp (live rows cannot wait for the future that the
    batch smoother also uses); a new shot or segment starts afresh."""

    def __init__(self, half_life_s: float) -> None:
        self.half_life_s = half_life_s
        self.state: dict[int, tuple[tuple, float, np.ndarray]] = {}

    def __call__(self, key: tuple, t: float, probs: np.ndarray) -> np.ndarray:
        track = key[0]
        previous = self.state.get(track)
        if (
            self.half_life_s <= 0
            or previous is None
            or previous[0] != key
            or not math.isfinite(t)
        ):
            smoothed = probs
        else:
            w = 0.5 ** (max(t - previous[1], 0.0) / self.half_life_s)
            smoothed = w * previous[2] + (1 - w) * probs
        self.state[track] = (key, t, smoothed)
        return smoothed


class RollingParts:
    """Buffers rows and commits them as ``live-<run>-<n>.parquet`` parts."""

    def __init__(self, out: Path, run_id: str, metadata: dict, smooth_s: float):
        self.out, self.run_id, self.metadata = out, run_id, metadata
        self.smoother = CausalSmoother(smooth_s)
        self.parts = 0
        self.faces = self.frames = 0
        self._faces: list[dict] = []
        self._frames: list[dict] = []

    def add(self, faces: dict, frame: dict) -> None:
        n = len(faces["frame_index"])
        smoothed = np.zeros((n, len(EMOTIONS)), np.float32)
        probs = np.stack([faces[e] for e in EMOTIONS], axis=1) if n else smoothed
        for i in range(n):
            key = (int(faces["track_id"][i]), int(faces["shot"][i]), frame["segment"])
            smoothed[i] = self.smoother(key, float(faces["timestamp_s"][i]), probs[i])
        for j, name in enumerate(SMOOTHED):
            faces[name] = smoothed[:, j]
        faces["emotion_smoothed"] = (
            np.asarray(EMOTIONS, dtype=object)[smoothed.argmax(axis=1)]
            if n
            else np.zeros(0, dtype=object)
        )
        faces["person"] = np.full(n, None, dtype=object)  # not linked live
        faces["wall_time_s"] = np.full(n, frame["wall_time_s"])
        faces["segment"] = np.full(n, frame["segment"], dtype=np.int64)
        self._faces.append(faces)
        self._frames.append({k: np.asarray([v]) for k, v in frame.items()})

    def commit(self) -> Path | None:
        """Write what is buffered as the next part (faces first, then frames: a
        frame's row appears only when its faces' rows are there)."""
        if not self._frames:
            return None
        name = f"live-{self.run_id}-{self.parts:05d}.parquet"
        meta = self.metadata | {"part": self.parts}
        faces = {
            f.name: np.concatenate([c[f.name] for c in self._faces])
            for f in LIVE_FACE_SCHEMA
        }
        frames = {
            f.name: np.concatenate([c[f.name] for c in self._frames])
            for f in LIVE_FRAME_SCHEMA
        }
        write_table(self.out / FACES_DIR / name, faces, LIVE_FACE_SCHEMA, meta)
        write_table(self.out / FRAMES_DIR / name, frames, LIVE_FRAME_SCHEMA, meta)
        self.faces += len(faces["frame_index"])
        self.frames += len(frames["frame_index"])
        self.parts += 1
        self._faces, self._frames = [], []
        return self.out / FACES_DIR / name


class LiveSink:
    """Takes each frame the scheduler has placed faces on and classifies it at
    once (batch mode batches across frames instead, which adds latency)."""

    def __init__(self, runtime, parts: RollingParts, source: str, view=None) -> None:
        self.runtime, self.parts, self.source, self.view = runtime, parts, source, view
        self.arrivals: dict[int, Arrival] = {}
        self.rows_latency: deque[float] = deque(maxlen=100_000)
        self.view_latency: deque[float] = deque(maxlen=100_000)
        self.analyzed = 0

    def add(self, frame, faces, shot: int, box_source: str) -> None:
        from analyzer.records import face_rows

        classifier = self.runtime.classifier
        crops = classifier.crops(frame.image, faces.boxes)
        probs = (
            classifier.predict(np.stack(crops))
            if crops
            else np.zeros((0, len(EMOTIONS)), np.float32)
        )
        rows = face_rows(
            self.source,
            frame.index,
            frame.timestamp_s,
            faces,
            probs,
            shot=shot,
            box_source=box_source,
        )
        arrival = self.arrivals.pop(frame.index)
        t = np.nan if frame.timestamp_s is None else frame.timestamp_s
        self.parts.add(
            rows,
            {
                "source": self.source,
                "frame_index": frame.index,
                "timestamp_s": t,
                "shot": shot,
                "faces": len(crops),
                "wall_time_s": arrival.wall_time_s,
                "segment": arrival.segment,
            },
        )
        self.analyzed += 1
        self.rows_latency.append(time.monotonic() - arrival.monotonic)
        if self.view is not None:
            self.view.publish(frame.image, rows, box_source, arrival)
            self.view_latency.append(time.monotonic() - arrival.monotonic)


# ---------------------------------------------------------------- the run


def _percentiles(values) -> dict:
    if not values:
        return {"median_ms": None, "p95_ms": None}
    a = np.asarray(values) * 1000
    return {
        "median_ms": round(float(np.median(a)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
    }


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, why: list[str]):
    """Ctrl-C and SIGTERM end the run cleanly: the loop sees ``stop`` and commits."""

    def handler(signum, frame):
        why.append(signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_live(args, runtime, stop: threading.Event, why: list[str]) -> dict:
    """Analyze SOURCE until it ends, ``--duration`` passes or ``stop`` is set;
    returns the facts written to ``run.json``."""
    from analyzer.keyframes import KeyframeScheduler

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)
    run_id = started.strftime("%Y%m%dT%H%M%S")
    view = None
    if args.serve:
        from analyzer.live_view import LiveView

        view = LiveView(*args.serve, source=args.source)
        view.start()
        print(f"live view: http://{view.address}/", file=sys.stderr)
    metadata = runtime.run_metadata() | {
        "mode": "live",
        "source": args.source,
        "smoothing": {"half_life_s": args.smooth, "causal": True},
    }
    parts = RollingParts(out, run_id, metadata, args.smooth)
    sink = LiveSink(runtime, parts, args.source, view)
    scheduler = KeyframeScheduler(runtime, sink, args.source, tracked=True)
    slot = LatestFrame()
    reader = Reader(
        args.source,
        slot,
        realtime=args.realtime,
        reconnect=args.reconnect,
        timeout_s=args.timeout,
    )
    facts = metadata | {"started": started.isoformat(timespec="seconds")}

    def write_facts(**extra) -> None:
        now = time.monotonic()
        analyzed_s = max(now - began, 1e-9)
        facts.update(
            {
                "frames_received": reader.received,
                "frames_analyzed": sink.analyzed,
                "frames_dropped": reader.received - sink.analyzed,
                "analyzed_fps": round(sink.analyzed / analyzed_s, 2),
                "parts": parts.parts,
                "faces": parts.faces,
                "segments": reader.segment + 1,
                "gaps": reader.gaps,
                "latency_rows": _percentiles(sink.rows_latency),
                "latency_view": _percentiles(sink.view_latency) if view else None,
                "source_info": reader.info,
            }
            | extra
        )
        write_json(out / "run.json", facts)

    began = time.monotonic()
    write_facts(complete=False, running=True, ended=None)
    reader.start()
    last_commit = last_stats = time.monotonic()
    segment, ended = 0, None
    try:
        while True:
            if stop.is_set():
                ended = {"SIGINT": "interrupted", "SIGTERM": "terminated"}.get(
                    why[-1] if why else "", "stopped"
                )
                break
            if args.duration and time.monotonic() - began >= args.duration:
                ended = "duration reached"
                break
            item = slot.get(timeout=0.2)
            if item is None:
                if slot.closed is not None and slot.closed != "stopped":
                    ended = slot.closed
                    break
            else:
                frame, arrival = item
                if arrival.segment != segment:  # reopened: old tracks are gone
                    scheduler.restart()
                    segment = arrival.segment
                sink.arrivals[frame.index] = arrival
                scheduler.add(frame)
                scheduler.flush()  # one frame at a time: no waiting for a batch
            if view is not None and time.monotonic() - last_stats >= 1.0:
                view.set_stats(
                    {
                        "frames_analyzed": sink.analyzed,
                        "frames_dropped": reader.received - sink.analyzed,
                        "analyzed_fps": round(
                            sink.analyzed / max(time.monotonic() - began, 1e-9), 1
                        ),
                    }
                )
                last_stats = time.monotonic()
            if time.monotonic() - last_commit >= args.part_seconds:
                parts.commit()
                write_facts(complete=False, running=True, ended=None)
                last_commit = time.monotonic()
    finally:
        reader.stopping.set()
        parts.commit()
        reader.join(timeout=5)
        if view is not None:
            view.stop()
        write_facts(
            complete=True,
            running=False,
            ended=ended or "error",
            finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
    return facts


def parse_serve(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (host 127.0.0.1 by default)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected [HOST:]PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    from analyzer.config import (
        DEFAULT_DETECT_INTERVAL_S,
        DEFAULT_MIN_FACE,
        DEFAULT_SMOOTH_S,
    )

    p = argparse.ArgumentParser(
        prog="python -m analyzer.live",
        description="Analyze a camera, a stream or a file as it plays.",
    )
    p.add_argument(
        "source",
        help="camera (0, /dev/video0), stream URL (rtsp://, http(s)://, udp://, "
        "anything FFmpeg opens) or file",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--realtime", action="store_true", help="pace a file at its own frame rate"
    )
    p.add_argument(
        "--part-seconds",
        type=float,
        default=10.0,
        help="commit a new Parquet part this often (default 10)",
    )
    p.add_argument(
        "--reconnect",
        action="store_true",
        help="reopen the source when it ends, drops or stalls (back-off 0.5-30 s); "
        "a file then plays again",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds without data before a stream counts as stalled (default 10)",
    )
    p.add_argument(
        "--serve",
        type=parse_serve,
        metavar="[HOST:]PORT",
        help="serve the annotated video and the last minute's charts over HTTP "
        "(host 127.0.0.1 unless given)",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--model", type=Path, help="a .keras model (default: shipped)")
    p.add_argument("--detector", default="auto", help="detector backend (auto)")
    p.add_argument(
        "--detect-interval",
        type=float,
        default=DEFAULT_DETECT_INTERVAL_S,
        help="seconds between full detections (default 1)",
    )
    p.add_argument("--min-face", type=int, default=DEFAULT_MIN_FACE)
    p.add_argument(
        "--smooth",
        type=float,
        default=DEFAULT_SMOOTH_S,
        metavar="HALF_LIFE_S",
        help="half-life of the causal smoother (0: off)",
    )
    p.add_argument("--classifier-runtime", default="auto")
    p.add_argument("--detector-runtime", default="auto")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.part_seconds <= 0 or args.timeout <= 0 or args.smooth < 0:
        print(
            "error: --part-seconds and --timeout must be positive, --smooth not "
            "negative",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.serve and args.serve[0] in ("0.0.0.0", "", "::"):
        print(
            f"warning: --serve {args.serve[0]} accepts connections from every "
            "network this machine is on; the page has no password",
            file=sys.stderr,
        )
    from analyzer.classifier import ModelUnavailable
    from analyzer.config import AnalyzerConfig
    from analyzer.detectors import DetectorUnavailable
    from analyzer.outdir import OutputError, OutputLock, check_output
    from analyzer.runtime import Runtime

    config = AnalyzerConfig(
        model=args.model,
        detector=args.detector,
        sample_fps=None,  # every frame it gets; the reader drops what it cannot
        detect_batch=1,
        detect_interval_s=args.detect_interval,
        min_face=args.min_face,
        classifier_runtime=args.classifier_runtime,
        detector_runtime=args.detector_runtime,
        smooth_s=args.smooth,
        reid="none",  # persons are linked per finished source, not live
    )
    try:
        check_output(args.out, [])
        with OutputLock(args.out):
            try:
                runtime = Runtime.create(config)
            except (ModelUnavailable, DetectorUnavailable, KeyError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_USAGE
            stop, why = threading.Event(), []
            with _stop_on_signals(stop, why):
                facts = run_live(args, runtime, stop, why)
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. the --serve port is taken
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{facts['ended']}: {facts['frames_analyzed']} frames analyzed of "
        f"{facts['frames_received']} received ({facts['frames_dropped']} dropped), "
        f"{facts['faces']} faces in {facts['parts']} parts -> {args.out}",
        file=sys.stderr,
    )
    lost = facts["ended"] not in (
        "end of stream",
        "duration reached",
        "interrupted",
        "terminated",
        "stopped",
    )
    return EXIT_FAILED if lost else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
