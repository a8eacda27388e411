"""Does the analyzer frame a face the way FER2013 does? Measure it end to end.

FER2013 faces are pasted (upscaled) into larger frames at random places; the whole
analyzer (detector, crop, classifier) runs on those frames as image files, and its
accuracy is compared with classifying the original 48x48 crops directly. The
detector's boxes are also compared with the pasted squares, which gives the crop
margin that reproduces FER2013's framing. Tune that margin on ``val`` (from the
train split), then report the gap on ``test``.

    python -m benchmarks.framing --data ../shared/data/fer2013 [--split val|test]
        [--model PATH] [--n 500] [--detector auto] [--crop-margin F] [--write-margin]

(``python -m training framing`` runs this same command.)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_contract.labels import EMOTIONS
from training.data import FerSplit, load_named_split

CANVAS, FACE = 360, 144  # frame side and pasted face side, pixels


@dataclass(frozen=True)
class Pasted:
    path: Path
    label: int
    box: tuple[int, int, int, int]  # where the face went, x1 y1 x2 y2


def _canvas(rng: np.random.Generator) -> np.ndarray:
    """A smooth grey background: a gradient with mild noise, not a flat colour."""
    ramp = np.linspace(rng.uniform(60, 120), rng.uniform(130, 200), CANVAS)
    base = ramp[None, :] if rng.random() < 0.5 else ramp[:, None]
    image = np.broadcast_to(base, (CANVAS, CANVAS)) + rng.normal(0, 4, (CANVAS, CANVAS))
    return np.clip(image, 0, 255).astype(np.uint8)


def paste_faces(split: FerSplit, folder: Path, seed: int = 0) -> list[Pasted]:
    """Write one PNG per face: the face upscaled to FACE px on a CANVAS px frame."""
    import cv2

    rng = np.random.default_rng(seed)
    pasted = []
    for i, (face, label) in enumerate(zip(split.images, split.labels, strict=True)):
        frame = _canvas(rng)
        x, y = (int(v) for v in rng.integers(0, CANVAS - FACE, size=2))
        frame[y : y + FACE, x : x + FACE] = cv2.resize(
            face, (FACE, FACE), interpolation=cv2.INTER_CUBIC
        )
        path = folder / f"{i:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        pasted.append(Pasted(path, int(label), (x, y, x + FACE, y + FACE)))
    return pasted


def _best_faces(out: Path):
    import pandas as pd

    faces = pd.read_parquet(out / "faces")
    return faces.sort_values("det_score").groupby("source").tail(1).set_index("source")


def measure(
    model_path: Path,
    data_root: Path,
    *,
    split: str = "val",
    n: int = 500,
    detector: str = "auto",
    cache_dir: Path | None = None,
    crop_margin: float | None = None,
) -> dict:
    """Run the analyzer on pasted faces and compare with direct classification.

    Args:
        crop_margin: override the model's margin for this run (to tune it on val).

    Returns:
        Accuracies (direct, pipeline, both on the faces the detector found), the
        detection rate, and the median margin that matches FER2013's framing.
    """
    from analyzer.batch import run
    from analyzer.classifier import EmotionClassifier
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime
    from training.evaluate import predict_file

    data = load_named_split(data_root, split, cache_dir)
    pick = np.sort(np.random.default_rng(0).permutation(len(data))[:n])
    data = data.subset(pick)
    # Raw probabilities: the analyzer's calibration does not change the top class.
    direct = predict_file(model_path, data.images)
    runtime = Runtime.create(AnalyzerConfig(model=model_path, detector=detector))
    if crop_margin is not None:  # a runtime of its own, the loaded one untouched
        from dataclasses import replace

        classifier = EmotionClassifier(model_path, crop_margin=crop_margin)
        runtime = replace(runtime, classifier=classifier)
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "in"
        images.mkdir()
        pasted = paste_faces(data, images)
        run([images], Path(tmp) / "out", runtime, progress=True)
        best = _best_faces(Path(tmp) / "out")
    return _compare(pasted, best, direct.argmax(axis=1), runtime)


def _compare(pasted: list[Pasted], best, direct: np.ndarray, runtime) -> dict:
    labels = np.array([p.label for p in pasted])
    found = np.array([p.path.name in best.index for p in pasted])
    piped = np.full(len(pasted), -1)
    margins = []
    for i, p in enumerate(pasted):
        if not found[i]:
            continue
        row = best.loc[p.path.name]
        piped[i] = EMOTIONS.index(row["emotion"])
        side = max(row["x2"] - row["x1"], row["y2"] - row["y1"])
        margins.append((FACE / side - 1.0) / 2.0)
    return {
        "n": len(pasted),
        "detector": runtime.detector_name,
        "crop_margin_used": runtime.classifier.info.crop_margin,
        "detected": round(float(found.mean()), 4),
        "accuracy_direct": round(float((direct == labels).mean()), 4),
        "accuracy_pipeline": round(float((piped == labels).mean()), 4),
        "accuracy_direct_on_detected": round(
            float((direct[found] == labels[found]).mean()), 4
        )
        if found.any()
        else None,
        "accuracy_pipeline_on_detected": round(
            float((piped[found] == labels[found]).mean()), 4
        )
        if found.any()
        else None,
        "fer_margin_median": round(float(np.median(margins)), 4) if margins else None,
    }


def write_margin(model_path: Path, margin: float) -> float:
    """Store ``margin`` (rounded to 0.01) as the model's crop margin."""
    from dataclasses import replace

    from emotion_contract.modelfile import read_info, write_info
    from training.card import refresh_card

    rounded = round(float(margin), 2)
    write_info(model_path, replace(read_info(model_path), crop_margin=rounded))
    refresh_card(Path(model_path))
    return rounded


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from emotion_contract.shipped import SHIPPED_MODEL

    parser = argparse.ArgumentParser(prog="python -m benchmarks.framing")
    parser.add_argument("--data", type=Path, required=True, help="FER2013 root or CSV")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL)
    parser.add_argument("--cache", type=Path, default=Path(".cache"))
    parser.add_argument(
        "--split",
        default="val",
        help="val (from train; for tuning the margin) or test (to report)",
    )
    parser.add_argument("--n", type=int, default=500, help="faces to paste")
    parser.add_argument("--detector", default="auto", help="detector (default: auto)")
    parser.add_argument(
        "--crop-margin",
        type=float,
        default=None,
        help="use this crop margin instead of the model's, for this run",
    )
    parser.add_argument(
        "--write-margin",
        action="store_true",
        help="store the measured margin in the model's metadata "
        "(only with --split val: never tune on test)",
    )
    args = parser.parse_args(argv)
    if args.write_margin and args.split != "val":
        print("error: --write-margin needs --split val")
        return 2
    report = measure(
        args.model,
        args.data,
        split=args.split,
        n=args.n,
        detector=args.detector,
        cache_dir=args.cache,
        crop_margin=args.crop_margin,
    )
    if args.write_margin:
        report["crop_margin_written"] = write_margin(
            args.model, report["fer_margin_median"]
        )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
