"""Row-by-row check of the fast path against a slow reference on one clip.

The reference uses the same settings with a full detection on every analyzed frame
(``--detect-interval 0``), so both runs analyze the same frames. A fast face row
and a reference face are the same face when their boxes overlap at IoU >= 0.3.
With a ground-truth file (``cuts.json`` beside ``cuts.mp4``: each shot's frame
range and person), shot boundaries and tracks are checked as well.

    python -m benchmarks.rows CLIP [--truth cuts.json] [--every-frame] [FLAGS...]

Figures:

- ``false_rows``: share of fast face rows with no reference face on their frame.
- ``missed``: share of reference faces with no fast row on their frame.
- ``tracks_across_shots`` / ``tracks_across_people``: fast tracks whose rows fall
  in more than one ground-truth shot, or more than one person.
- ``cuts_found`` / ``cuts_missed`` / ``cuts_false``: shot boundaries against the
  ground truth; a boundary is found when the analyzer starts a shot on the first
  analyzed frame at or after the true cut.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analyzer.tracking import iou_matrix

SAME_FACE_IOU = 0.3


def run_analyzer(clip: Path, out: Path, *flags: str) -> Path:
    """Our analyzer on ``clip`` into ``out`` (no report), as a separate process."""
    cmd = [sys.executable, "-m", "analyzer", str(clip), "--out", str(out)]
    subprocess.run([*cmd, "--no-report", "-q", *flags], check=True)
    return out


def _boxes(faces: pd.DataFrame) -> dict[int, np.ndarray]:
    cols = ["x1", "y1", "x2", "y2"]
    return {int(i): g[cols].to_numpy() for i, g in faces.groupby("frame_index")}


def unmatched(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> tuple[int, int]:
    """Boxes of ``a`` with no box of ``b`` on the same frame at IoU >= 0.3:
    (unmatched, total)."""
    total = missing = 0
    for frame, boxes in a.items():
        total += len(boxes)
        other = b.get(frame)
        if other is None or not len(other):
            missing += len(boxes)
            continue
        missing += int((iou_matrix(boxes, other).max(axis=1) < SAME_FACE_IOU).sum())
    return missing, total


def truth_segments(truth: Path) -> list[dict]:
    """Ground-truth shots as ``{first, end, person}`` (frame range, end exclusive)."""
    segments = json.loads(truth.read_text())["segments"]
    return [
        {"first": s["frames"][0], "end": s["frames"][1], "person": s["person"]}
        for s in segments
    ]


def _segment_of(frames: np.ndarray, segments: list[dict]) -> np.ndarray:
    starts = np.array([s["first"] for s in segments])
    return np.searchsorted(starts, frames, side="right") - 1


def shot_figures(out: Path, segments: list[dict]) -> dict:
    """Boundaries found, missed and false against the ground truth."""
    frames = pd.read_parquet(out / "frames").sort_values("frame_index")
    analyzed = frames["frame_index"].to_numpy()
    if "shot" not in frames:
        starts: set[int] = set()
    else:
        new = frames["shot"].diff().fillna(0).to_numpy() != 0
        starts = set(analyzed[new].tolist())
    expected = set()
    for s in segments[1:]:
        later = analyzed[analyzed >= s["first"]]
        if len(later):
            expected.add(int(later[0]))
    return {
        "cuts_true": len(expected),
        "cuts_found": len(expected & starts),
        "cuts_missed": len(expected - starts),
        "cuts_false": len(starts - expected),
    }


def track_figures(faces: pd.DataFrame, segments: list[dict]) -> dict:
    """Tracks whose rows fall in more than one true shot, or person."""
    seg = _segment_of(faces["frame_index"].to_numpy(), segments)
    person = np.array([segments[i]["person"] or "" for i in seg], dtype=object)
    df = pd.DataFrame({"track": faces["track_id"].to_numpy(), "seg": seg, "p": person})
    per = df.groupby("track").agg(shots=("seg", "nunique"), people=("p", "nunique"))
    return {
        "tracks": len(per),
        "tracks_across_shots": int((per["shots"] > 1).sum()),
        "tracks_across_people": int((per["people"] > 1).sum()),
    }


def compare(fast: Path, reference: Path, truth: Path | None = None) -> dict:
    """Row-level figures of the output ``fast`` against ``reference``."""
    mine = pd.read_parquet(fast / "faces")
    ref = pd.read_parquet(reference / "faces")
    false_rows, rows = unmatched(_boxes(mine), _boxes(ref))
    missed, ref_faces = unmatched(_boxes(ref), _boxes(mine))
    result = {
        "rows": rows,
        "false_rows": round(false_rows / max(rows, 1), 4),
        "reference_faces": ref_faces,
        "missed": round(missed / max(ref_faces, 1), 4),
    }
    if "box_source" in mine:
        result["rows_by_box_source"] = mine["box_source"].value_counts().to_dict()
    if truth is not None:
        segments = truth_segments(truth)
        result |= track_figures(mine, segments) | shot_figures(fast, segments)
    return result


def check(clip: Path, tmp: Path, flags: list[str], truth: Path | None) -> dict:
    """Run the fast path with ``flags`` and its reference, and compare them."""
    fast = run_analyzer(clip, tmp / "fast", *flags)
    ref = run_analyzer(clip, tmp / "reference", *flags, "--detect-interval", "0")
    return {"flags": " ".join(flags)} | compare(fast, ref, truth)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clip", type=Path)
    parser.add_argument("--truth", type=Path, default=None, help="cuts.json")
    args, flags = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(check(args.clip, Path(tmp), flags, args.truth), indent=1))


if __name__ == "__main__":
    main()
