"""Compare the offline face detectors on the clips in ../shared/media.

For each clip and detector: the share of frames with exactly one face (every clip
there shows one person), with at least one, and the detection time per frame.
Both detectors run in the same process on the same frames, so the time ratio holds
even on a busy machine.

    python benchmarks/detectors.py [--media ../shared/media] [--every 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analyzer.detectors import DETECTORS
from analyzer.sources import VideoInfo, iter_video


def measure(name: str, frames) -> dict:
    detector = DETECTORS.create(name)
    detector.detect(frames[:1])  # warm-up: graph tracing is not detection time
    started = time.perf_counter()
    counts = [len(f) for f in detector.detect(frames)]
    seconds = time.perf_counter() - started
    n = len(frames)
    return {
        "detector": name,
        "frames": n,
        "exactly_one": round(sum(c == 1 for c in counts) / n, 4),
        "at_least_one": round(sum(c >= 1 for c in counts) / n, 4),
        "ms_per_frame": round(1000 * seconds / n, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--every", type=int, default=1, help="use every Nth frame")
    parser.add_argument("--detectors", default="haar,mtcnn")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for clip in sorted(args.media.glob("*.mp4")):
        frames = [f.image for f in iter_video(clip, VideoInfo(), sample_fps=None)]
        frames = frames[:: args.every]
        for name in args.detectors.split(","):
            row = {"clip": clip.name, **measure(name, frames)}
            rows.append(row)
            print(
                f"{row['clip']:18s} {name:8s} frames {row['frames']:4d}  "
                f"exactly one {row['exactly_one']:.3f}  at least one "
                f"{row['at_least_one']:.3f}  {row['ms_per_frame']:7.2f} ms/frame"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
