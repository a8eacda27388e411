"""Emotions over time against ground truth: raw rows, smoothed rows and episodes.

A video is made of held-out FER2013 faces: each face is held for a random 1-4 s
on its own background, with small per-frame jitter of position, scale and
brightness, then the video cuts to the next face. Its true emotion is known at
every instant. With ``--same-shot P``, a share P of the changes are not cuts:
the next face, of another emotion, takes the place of the last one on the same
background, so the track goes on and the smoother's lag at a change of emotion
within a track shows in the boundary error. The analyzer runs on it at the
default settings with smoothing off; the raw rows are then smoothed at each
half-life with the analyzer's own code (:func:`analyzer.timeline.analyse`), and
a one-sided (causal) exponential filter is measured beside it. Reported per setting:

- per-row accuracy against the held face's label,
- top-emotion flips per minute within tracks (the truth has none: a change of
  face is a cut, which ends the track),
- episode boundary error: per hold, the distance from the hold's start and end
  to the start of its first and the end of its last episode (median, seconds),
  apart for boundaries at cuts (where tracks end anyway) and within tracks, and
  spurious boundaries: episodes beyond one per hold, per minute.

Choose on ``--split val`` (from the train split), report on ``--split test``:

    python -m benchmarks.episodes --data ../shared/data/fer2013 --split val
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_contract.labels import EMOTIONS

W, H, FACE, FPS = 480, 360, 144, 25
HALF_LIVES = (0.0, 0.25, 0.5, 1.0, 2.0)
MIN_EPISODES = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Hold:
    start_s: float
    end_s: float
    label: int
    cut: bool = True  # the hold starts with a cut (else the last face is replaced)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A colour gradient with mild noise; each hold gets its own, so cuts are cuts."""
    import cv2

    hue = rng.uniform(0, 180)
    ramp = np.linspace(rng.uniform(60, 120), rng.uniform(150, 230), W)
    value = np.broadcast_to(ramp[None, :], (H, W))
    if rng.random() < 0.5:
        value = value[:, ::-1]
    hsv = np.stack(
        [np.full((H, W), hue), np.full((H, W), rng.uniform(60, 160)), value], axis=2
    )
    image = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


def build_video(
    images, labels, path: Path, holds: int, seed: int, same_shot: float = 0.0
) -> list[Hold]:
    """Write the video; returns its holds (the ground truth)."""
    from fractions import Fraction

    import av
    import cv2

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    truth, t, used = [], 0, 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(holds):
            same = i > 0 and rng.random() < same_shot
            pick = order[used]
            while same and labels[pick] == truth[-1].label:  # a change of emotion
                used += 1
                pick = order[used]
            used += 1
            frames = int(round(rng.uniform(1.0, 4.0) * FPS))
            truth.append(
                Hold(t / FPS, (t + frames) / FPS, int(labels[pick]), cut=not same)
            )
            if not same:
                background = _background(rng)
                x0 = rng.integers(20, W - FACE - 20)
                y0 = rng.integers(20, H - FACE - 20)
            face = cv2.cvtColor(images[pick], cv2.COLOR_GRAY2BGR).astype(np.float32)
            for _ in range(frames):
                side = int(round(FACE * (1 + rng.normal(0, 0.03))))
                dx, dy = rng.normal(0, 0.015 * FACE, 2)
                x = int(np.clip(x0 + dx, 0, W - side))
                y = int(np.clip(y0 + dy, 0, H - side))
                scaled = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
                scaled *= 1 + rng.normal(0, 0.05)
                frame = background.copy()
                frame[y : y + side, x : x + side] = np.clip(scaled, 0, 255)
                video = av.VideoFrame.from_ndarray(frame, format="bgr24")
                for packet in stream.encode(video):
                    container.mux(packet)
            t += frames
        for packet in stream.encode():
            container.mux(packet)
    return truth


def causal(t: np.ndarray, probs: np.ndarray, half_life: float) -> np.ndarray:
    """A one-sided exponential filter (what a live view could use), for comparison."""
    out = probs.astype(np.float64).copy()
    for i in range(1, len(out)):
        keep = 2.0 ** (-(t[i] - t[i - 1]) / half_life)
        out[i] = keep * out[i - 1] + (1 - keep) * out[i]
    return out


def score(faces, holds: list[Hold], minutes: float, top, episodes) -> dict:
    """The figures of one setting (module docstring)."""
    starts = np.array([h.start_s for h in holds])
    which = np.searchsorted(starts, faces["timestamp_s"].to_numpy(), side="right") - 1
    truth = np.array([holds[i].label for i in which])
    flips = 0
    for _, rows in faces.assign(top=top).groupby(["shot", "track_id"]):
        labels = rows.sort_values("frame_index")["top"].to_numpy()
        flips += int((labels[1:] != labels[:-1]).sum())
    errors: dict[bool, list[float]] = {True: [], False: []}  # at a cut or not
    extra, covered = 0, 0
    if episodes is not None:
        middle = (episodes["start_s"] + episodes["end_s"]).to_numpy() / 2
        owner = np.searchsorted(starts, middle, side="right") - 1
        for i, hold in enumerate(holds):
            mine = episodes[owner == i]
            if not len(mine):
                continue
            covered += 1
            ends_with_cut = i + 1 == len(holds) or holds[i + 1].cut
            errors[hold.cut].append(abs(mine["start_s"].min() - hold.start_s))
            errors[ends_with_cut].append(abs(mine["end_s"].max() - hold.end_s))
            extra += len(mine) - 1
    result = {
        "accuracy": round(float((top == truth).mean()), 4),
        "flips_per_min": round(flips / minutes, 2),
    }
    if episodes is not None:
        result |= {
            "boundary_error_s": round(float(np.median(errors[True])), 3),
            "boundary_error_within_s": (
                round(float(np.median(errors[False])), 3) if errors[False] else None
            ),
            "spurious_per_min": round(extra / minutes, 2),
            "holds_with_episodes": covered,
        }
    return result


def measure(
    data_root: Path,
    split: str,
    holds: int,
    seed: int,
    cache: Path | None,
    same_shot: float = 0.0,
) -> dict:
    import pandas as pd

    from analyzer.batch import run
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime
    from analyzer.timeline import analyse
    from training.data import load_cached, load_validation

    data = (
        load_validation(data_root, cache)
        if split == "val"
        else load_cached(data_root, "test", cache)
    )
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "in" / f"faces-{split}.mp4"
        video.parent.mkdir()
        truth = build_video(data.images, data.labels, video, holds, seed, same_shot)
        out = Path(tmp) / "out"
        runtime = Runtime.create(AnalyzerConfig(smooth_s=0.0, min_episode_s=0.0))
        run([video.parent], out, runtime, progress=False)
        faces = pd.read_parquet(out / "faces")
        frames = pd.read_parquet(out / "frames")
    minutes = truth[-1].end_s / 60
    starts = np.array([h.start_s for h in truth])
    which = np.searchsorted(starts, faces["timestamp_s"].to_numpy(), side="right") - 1
    true_top = np.array([truth[i].label for i in which])
    probs = faces[list(EMOTIONS)].to_numpy()
    columns = {c: faces[c].to_numpy() for c in ("frame_index", "timestamp_s", "shot")}
    columns |= {"track_id": faces["track_id"].to_numpy()}
    columns |= {e: faces[e].to_numpy() for e in EMOTIONS}
    step = float(np.median(np.diff(np.sort(frames["timestamp_s"].to_numpy()))))
    results = {
        "split": split,
        "holds": holds,
        "same_shot": same_shot,
        "minutes": round(minutes, 2),
        "rows": len(faces),
        "frames_with_faces": round(float((frames["faces"] > 0).mean()), 4),
        # The same measure on the true labels of the same rows: the changes a
        # perfect classifier would show within tracks.
        "truth_flips_per_min": score(faces, truth, minutes, true_top, None)[
            "flips_per_min"
        ],
        "settings": [],
    }
    for half_life in HALF_LIVES:
        for min_episode in MIN_EPISODES:
            found = analyse(
                "v",
                columns,
                half_life_s=half_life,
                min_episode_s=min_episode,
                step_s=step,
                frame_indices=frames["frame_index"].to_numpy(),
            )
            figures = score(
                faces,
                truth,
                minutes,
                found.smoothed.argmax(1),
                pd.DataFrame(found.episodes),
            )
            results["settings"].append(
                {"method": "two-sided", "half_life_s": half_life}
                | {"min_episode_s": min_episode}
                | figures
            )
    for half_life in HALF_LIVES[1:]:
        top = np.zeros(len(faces), dtype=int)
        for _, rows in faces.groupby(["shot", "track_id"]):
            rows = rows.sort_values("frame_index")
            index = rows.index.to_numpy()
            smoothed = causal(rows["timestamp_s"].to_numpy(), probs[index], half_life)
            top[index] = smoothed.argmax(1)
        results["settings"].append(
            {"method": "causal", "half_life_s": half_life, "min_episode_s": None}
            | score(faces, truth, minutes, top, None)
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.episodes")
    parser.add_argument("--data", type=Path, required=True, help="FER2013 root")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--holds", type=int, default=120, help="faces in the video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--same-shot",
        type=float,
        default=0.0,
        metavar="P",
        help="share of changes without a cut (another emotion in the same place)",
    )
    parser.add_argument("--cache", type=Path, default=Path(".cache"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = measure(
        args.data, args.split, args.holds, args.seed, args.cache, args.same_shot
    )
    print(
        f"{results['split']}: {results['holds']} holds "
        f"({results['same_shot']:.0%} without a cut), {results['minutes']} min, "
        f"{results['rows']} face rows, faces found on "
        f"{results['frames_with_faces']:.1%} of analyzed frames; true flips "
        f"{results['truth_flips_per_min']:.2f}/min"
    )
    print(
        f"{'method':>9} {'half-life':>9} {'min ep.':>7} {'accuracy':>8} "
        f"{'flips/min':>9} {'err cut':>8} {'err within':>10} {'spurious/min':>12}"
    )
    for s in results["settings"]:
        min_episode = "" if s["min_episode_s"] is None else f"{s['min_episode_s']:g}"
        print(
            f"{s['method']:>9} {s['half_life_s']:>9g} {min_episode:>7} "
            f"{s['accuracy']:>8.4f} {s['flips_per_min']:>9.2f} "
            f"{s.get('boundary_error_s', float('nan')):>8.3f} "
            f"{s.get('boundary_error_within_s') or float('nan'):>10.3f} "
            f"{s.get('spurious_per_min', float('nan')):>12.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
