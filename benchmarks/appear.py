"""How soon a face that appears within a shot gets rows, for several keyframe policies.

From each clip of ../shared/media, a copy is made in which the face region (all of
the slow reference's boxes, with a margin) is covered by a flat patch until a
given time and then uncovered, within one shot: a face appearing mid-shot, as when
a person steps in or an occluder moves away. Each variant (analyzer flags) is run
at the default sampling and every frame, and compared with the slow reference of
the same sampling (``--detect-interval 0``) row by row (``benchmarks.rows``).

    python -m benchmarks.appear [--media ../shared/media]

Printed per clip, sampling and variant: reference faces missed (share), the delay
from the reveal to the face's first row (seconds), and the wall time of the run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .rows import compare, run_analyzer

REVEALS_S = (0.3, 0.7, 1.1, 1.5)  # reveal times, spread over a keyframe interval
VARIANTS = {
    "interval 1 s (default)": [],
    "interval 0.5 s": ["--detect-interval", "0.5"],
    "interval 0.25 s": ["--detect-interval", "0.25"],
}


def covered_copy(clip: Path, boxes: np.ndarray, reveal_s: float, dest: Path) -> Path:
    """``clip`` re-encoded with ``boxes``' union covered until ``reveal_s``."""
    import av

    x1, y1 = np.floor(boxes[:, :2].min(axis=0)).astype(int)
    x2, y2 = np.ceil(boxes[:, 2:].max(axis=0)).astype(int)
    with av.open(str(clip)) as src, av.open(str(dest), "w") as out:
        vin = src.streams.video[0]
        stream = out.add_stream("libx264", rate=vin.average_rate)
        stream.width, stream.height, stream.pix_fmt = vin.width, vin.height, "yuv420p"
        for frame in src.decode(vin):
            image = frame.to_ndarray(format="bgr24")
            if float(frame.pts * vin.time_base) < reveal_s:
                h, w = image.shape[:2]
                patch = image[max(y1 - 10, 0) : y2 + 10, max(x1 - 10, 0) : x2 + 10]
                patch[:] = np.median(image.reshape(-1, 3), axis=0)
            new = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(new):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def first_row_delay(out: Path, reveal_s: float) -> float | None:
    faces = pd.read_parquet(out / "faces")
    after = faces[faces["timestamp_s"] >= reveal_s - 1e-6]
    return (
        None if after.empty else round(float(after["timestamp_s"].min()) - reveal_s, 3)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for clip in (args.media / "woman2.mp4", args.media / "phone_street.mp4"):
            ref_all = run_analyzer(
                clip, tmp / "boxes", "--every-frame", "--detect-interval", "0"
            )
            faces = pd.read_parquet(ref_all / "faces")
            boxes = faces[["x1", "y1", "x2", "y2"]].to_numpy()
            for reveal in REVEALS_S:
                copy = covered_copy(
                    clip, boxes, reveal, tmp / f"{clip.stem}-{reveal}.mp4"
                )
                for sampling, flags in (
                    ("5 fps", []),
                    ("every frame", ["--every-frame"]),
                ):
                    ref = run_analyzer(
                        copy, tmp / "ref", *flags, "--detect-interval", "0"
                    )
                    for name, variant in VARIANTS.items():
                        started = time.perf_counter()
                        out = run_analyzer(copy, tmp / "fast", *flags, *variant)
                        wall = time.perf_counter() - started
                        row = compare(out, ref)
                        results.append(
                            {
                                "clip": clip.name,
                                "reveal_s": reveal,
                                "sampling": sampling,
                                "variant": name,
                                "missed": row["missed"],
                                "false_rows": row["false_rows"],
                                "delay_s": first_row_delay(out, reveal),
                                "reference_delay_s": first_row_delay(ref, reveal),
                                "wall_s": round(wall, 2),
                            }
                        )
                        print(json.dumps(results[-1]), flush=True)
    table = pd.DataFrame(results)
    summary = table.groupby(["sampling", "variant"]).agg(
        missed=("missed", "mean"),
        delay_mean=("delay_s", "mean"),
        delay_max=("delay_s", "max"),
        wall_s=("wall_s", "sum"),
    )
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
