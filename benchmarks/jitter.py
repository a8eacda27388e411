"""How often a few pixels of box jitter change a model's top emotion.

Runs the analyzer's slow path (MTCNN on every full-size frame) on a clip for its
reference face boxes. Then, for each model, classifies the crop at every reference
box and at ``--repeats`` jittered copies of it (centre moved and size scaled by
normal noise of ``--sigma`` times the box's width and height, the same noise for
every model), and reports the share of jittered crops whose top emotion differs
from the unjittered crop's, and how often the top emotion changes between
consecutive reference frames.

    python -m benchmarks.jitter MODEL [MODEL ...] [--clip ../shared/media/woman2.mp4]
        [--sigma 0.02] [--repeats 3] [--json jitter.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analyzer.classifier import EmotionClassifier
from analyzer.sources import VideoInfo, iter_video

from .speed import SLOW, largest_per_frame, ours


def reference_boxes(clip: Path) -> pd.DataFrame:
    """The slow path's faces: frame_index and x1, y1, x2, y2, in frame order."""
    with tempfile.TemporaryDirectory() as tmp:
        ours(clip, Path(tmp), *SLOW, warm=False)
        faces = pd.read_parquet(Path(tmp) / "faces")
    return faces.sort_values(["frame_index", "x1"]).reset_index(drop=True)


def jittered(boxes: np.ndarray, noise: np.ndarray, sigma: float) -> np.ndarray:
    """``boxes`` (n, 4) moved by ``noise`` (n, 3: dx, dy, scale) times ``sigma``."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + noise[:, 0] * sigma * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + noise[:, 1] * sigma * h
    scale = 1 + noise[:, 2] * sigma
    half_w, half_h = w * scale / 2, h * scale / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


def measure(clip: Path, models: list[Path], sigma: float, repeats: int) -> dict:
    faces = reference_boxes(clip)
    boxes = faces[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    rng = np.random.default_rng(0)
    variants = [boxes] + [
        jittered(boxes, rng.normal(size=(len(boxes), 3)), sigma) for _ in range(repeats)
    ]
    classifiers = [EmotionClassifier(m) for m in models]
    # crops[model][variant]: one crop per reference face, in faces' order
    crops = [[[] for _ in variants] for _ in classifiers]
    rows = faces.groupby("frame_index").indices
    for frame in iter_video(clip, VideoInfo(), sample_fps=None):
        if frame.index not in rows:
            continue
        picked = rows[frame.index]
        every = np.concatenate([variant[picked] for variant in variants])
        for per_model, classifier in zip(crops, classifiers, strict=True):
            # One call per frame and model: the frame's colour conversion once.
            found = classifier.crops(frame.image, every)
            for v, per_variant in enumerate(per_model):
                per_variant += found[v * len(picked) : (v + 1) * len(picked)]
    result = {"clip": clip.name, "faces": len(faces), "sigma": sigma, "models": {}}
    for path, classifier, per_model in zip(models, classifiers, crops, strict=True):
        top = [classifier.predict(np.stack(c)).argmax(axis=1) for c in per_model]
        changed = np.mean([(t != top[0]).mean() for t in top[1:]])
        # Consecutive frames: the largest face of each frame, as speed.py compares.
        steps = largest_per_frame(faces.assign(top=top[0]))["top"].to_numpy()
        between = (steps[1:] != steps[:-1]).mean()
        result["models"][str(path)] = {
            "name": classifier.name,
            "top_changed_under_jitter": round(float(changed), 4),
            "top_changed_between_frames": round(float(between), 4),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--clip", type=Path, default=Path("../shared/media/woman2.mp4"))
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.clip, args.models, args.sigma, args.repeats)
    print(f"{result['clip']}: {result['faces']} reference faces, sigma {args.sigma}")
    for path, m in result["models"].items():
        print(
            f"  {m['top_changed_under_jitter']:.2%} of jittered crops change the top "
            f"emotion; {m['top_changed_between_frames']:.2%} between frames: {path}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
