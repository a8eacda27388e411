"""Compare the offline face detectors on the clips in ../shared/media.

For each clip, detector and detection size: the share of frames with exactly one
face (every clip there shows one person), with at least one, and the detection time
per frame, in batches of ``--batch`` frames. Everything runs in one process on the
same frames, so the time ratios hold even on a busy machine.

    python -m benchmarks.detectors [--media ../shared/media] [--every 2]
        [--detectors haar,mtcnn:keras,mtcnn:litert] [--max-sides 0,448]
        [--batch 8] [--json OUT]

A max side of 0 keeps the frames' own size. ``NAME:RUNTIME`` picks MTCNN's runtime
(``keras``: the mtcnn package on TensorFlow; ``litert``: our cascade on LiteRT
copies of its networks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2

from analyzer.detectors import DETECTORS
from analyzer.sources import VideoInfo, iter_video


def measure(detector, frames, batch: int) -> dict:
    detector.detect(frames[:batch])  # warm-up: graph tracing is not detection time
    started = time.perf_counter()
    counts = []
    for i in range(0, len(frames), batch):
        counts += [len(f) for f in detector.detect(frames[i : i + batch])]
    seconds = time.perf_counter() - started
    n = len(frames)
    return {
        "frames": n,
        "exactly_one": round(sum(c == 1 for c in counts) / n, 4),
        "at_least_one": round(sum(c >= 1 for c in counts) / n, 4),
        "ms_per_frame": round(1000 * seconds / n, 2),
    }


def create(spec: str):
    """``haar``, ``mtcnn`` or ``mtcnn:litert``-style names."""
    name, _, runtime = spec.partition(":")
    return DETECTORS.create(name, **({"runtime": runtime} if runtime else {}))


def resized(frames, max_side: int):
    scale = max_side / max(frames[0].shape[:2]) if max_side else 1.0
    if scale >= 1.0:
        return frames
    return [
        cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for f in frames
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--every", type=int, default=1, help="use every Nth frame")
    parser.add_argument("--detectors", default="haar,mtcnn:keras,mtcnn:litert")
    parser.add_argument("--max-sides", default="0", help="comma-separated sizes")
    parser.add_argument("--batch", type=int, default=8, help="frames per call")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    detectors = {spec: create(spec) for spec in args.detectors.split(",")}
    rows = []
    for clip in sorted(args.media.glob("*.mp4")):
        frames = [f.image for f in iter_video(clip, VideoInfo(), sample_fps=None)]
        frames = frames[:: args.every]
        for side in (int(s) for s in args.max_sides.split(",")):
            small = resized(frames, side)
            for name, detector in detectors.items():
                row = {
                    "clip": clip.name,
                    "detector": name,
                    "max_side": side,
                    **measure(detector, small, args.batch),
                }
                rows.append(row)
                print(
                    f"{clip.name:18s} {name:12s} side {side or 'full':>4} "
                    f"frames {row['frames']:4d}  exactly one {row['exactly_one']:.3f}"
                    f"  at least one {row['at_least_one']:.3f}  "
                    f"{row['ms_per_frame']:7.2f} ms/frame"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
