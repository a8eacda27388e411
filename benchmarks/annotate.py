"""The cost of ``--annotate``: the 10x woman2 loop analyzed with and without it.

Whole processes at the default settings, alternating pairs (``--repeat``), each
timed after an untimed warm-up; prints the wall times, the ratio per pair and their
median, the encoder, and the annotated video's frame count against the source's.

    python -m benchmarks.annotate [--repeat 3] [--json annotate.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from .speed import HERE, loop_video, ours

MEDIA = HERE.parent.parent / "shared" / "media"


def frame_count(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="alternating pairs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from analyzer.annotate import pick_encoder

    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        looped = loop_video(MEDIA / "woman2.mp4", tmp / "woman2_x10.mp4", 10)
        pairs = []
        for i in range(args.repeat):
            plain = ours(looped, tmp / f"plain{i}")
            annotated = ours(looped, tmp / f"annotated{i}", "--annotate")
            pairs.append(
                {
                    "plain_s": plain["wall_s"],
                    "annotate_s": annotated["wall_s"],
                    "ratio": round(annotated["wall_s"] / plain["wall_s"], 2),
                }
            )
            print(json.dumps(pairs[-1]))
        (video,) = (tmp / "annotated0" / "annotated").glob("*.mp4")
        result = {
            "input": "woman2.mp4 looped 10x",
            "frames": frame_count(looped),
            "annotated_frames": frame_count(video),
            "annotated_mb": round(video.stat().st_size / 2**20, 1),
            "encoder": pick_encoder(),
            "pairs": pairs,
            "median_ratio": statistics.median(p["ratio"] for p in pairs),
            "median_extra_s": round(
                statistics.median(p["annotate_s"] - p["plain_s"] for p in pairs), 2
            ),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
