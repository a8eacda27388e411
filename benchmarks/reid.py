"""Re-identification on edited footage with known people: cuts.mp4 and cuts.json.

Analyzes cuts.mp4 (8 shots, two people) at the default settings and at every
frame, embeds each track from up to 3 chosen detections with dlib's descriptor
(:mod:`analyzer.reid`), links the tracks, and scores the links against the people
in cuts.json (a track's person is that of the shot holding its middle row):
pairwise precision and recall over tracks for thresholds around dlib's 0.6, the
largest same-person and smallest different-person distance between tracks, and
the time per embedded face. The same on mirrored, darker (x0.5) and zoomed (1.3x,
centre) copies of every frame, to check the threshold on material it was not
chosen on.

``--cost N`` also times N alternating pairs of whole runs on the 10x woman2 loop
with ``--reid none`` and ``--reid dlib`` (the share of a run re-identification
takes).

    python -m benchmarks.reid [--cost 3] [--json reid.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analyzer.batch import run
from analyzer.config import AnalyzerConfig
from analyzer.reid import (
    DlibEmbedder,
    TrackSpan,
    choose_samples,
    link_tracks,
    pairwise_scores,
    track_embedding,
)
from analyzer.runtime import Runtime
from analyzer.sources import VideoInfo, iter_video

HERE = Path(__file__).resolve().parent
MEDIA = HERE.parent.parent / "shared" / "media"
THRESHOLDS = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def truth_by_track(faces: pd.DataFrame, truth: dict) -> dict[int, str]:
    people = {}
    for track, rows in faces.groupby("track_id"):
        t = float(rows.timestamp_s.median())
        for seg in truth["segments"]:
            if seg["start_s"] <= t < seg["end_s"] and seg["person"]:
                people[int(track)] = seg["person"]
    return people


def variant(image: np.ndarray, boxes: np.ndarray, kind: str):
    import cv2

    h, w = image.shape[:2]
    if kind == "mirrored":
        b = boxes.copy()
        b[:, [0, 2]] = w - boxes[:, [2, 0]]
        return image[:, ::-1].copy(), b
    if kind == "darker":
        return (image * 0.5).astype(np.uint8), boxes
    if kind == "zoomed":
        z = 1.3
        big = cv2.resize(image, None, fx=z, fy=z, interpolation=cv2.INTER_LINEAR)
        x0, y0 = (big.shape[1] - w) // 2, (big.shape[0] - h) // 2
        b = boxes * z - np.array([x0, y0, x0, y0])
        return big[y0 : y0 + h, x0 : x0 + w].copy(), b
    return image, boxes


def measure(clip: Path, out: Path, runtime: Runtime, truth: dict, embedder) -> dict:
    run([clip.parent], out, runtime, progress=False)
    faces = pd.read_parquet(out / "faces")
    faces = faces[faces.source == clip.name]
    people = truth_by_track(faces, truth)
    chosen = {}
    for track, rows in faces[faces.box_source == "detected"].groupby("track_id"):
        side = np.minimum(rows.x2 - rows.x1, rows.y2 - rows.y1).to_numpy()
        pick = choose_samples(
            rows.frame_index.to_numpy(),
            rows.timestamp_s.to_numpy(),
            side,
            rows.det_score.to_numpy(),
        )
        chosen[int(track)] = rows.iloc[pick]
    wanted = {int(i) for rows in chosen.values() for i in rows.frame_index}
    frames = {
        f.index: f.image
        for f in iter_video(clip, VideoInfo(), sample_fps=None)
        if f.index in wanted
    }
    spans = [
        TrackSpan(int(t), float(r.timestamp_s.min()), float(r.timestamp_s.max()))
        for t, r in faces.groupby("track_id")
    ]
    result = {"tracks": int(faces.track_id.nunique()), "labelled": len(people)}
    for kind in ("original", "mirrored", "darker", "zoomed"):
        vectors, faces_embedded, started = {}, 0, time.perf_counter()
        for track, rows in chosen.items():
            per_face = []
            for _, row in rows.iterrows():
                box = np.array([[row.x1, row.y1, row.x2, row.y2]])
                image, b = variant(frames[int(row.frame_index)], box, kind)
                per_face.append(embedder.embed(image, b)[0])
                faces_embedded += 1
            vectors[track] = track_embedding(np.stack(per_face))
        seconds = time.perf_counter() - started
        ids = [t for t in vectors if t in people]
        same, diff = [], []
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                d = float(np.linalg.norm(vectors[a] - vectors[b]))
                (same if people[a] == people[b] else diff).append(d)
        result[kind] = {
            "faces_embedded": faces_embedded,
            "ms_per_face": round(1000 * seconds / max(faces_embedded, 1), 1),
            "same_person_max": round(max(same), 3) if same else None,
            "different_min": round(min(diff), 3) if diff else None,
            "by_threshold": {
                str(t): {
                    k: round(v, 3) if isinstance(v, float) else v
                    for k, v in pairwise_scores(
                        link_tracks(spans, vectors, t), people
                    ).items()
                }
                for t in THRESHOLDS
            },
        }
    return result


def cost(tmp: Path, pairs: int) -> dict:
    import statistics

    from .speed import loop_video, ours

    looped = loop_video(MEDIA / "woman2.mp4", tmp / "woman2_x10.mp4", 10)
    runs = []
    for i in range(pairs):
        off = ours(looped, tmp / f"off{i}", "--reid", "none")["wall_s"]
        on = ours(looped, tmp / f"on{i}", "--reid", "dlib")["wall_s"]
        runs.append({"none_s": off, "dlib_s": on, "share": round(1 - off / on, 3)})
    tracks = pd.read_parquet(tmp / "on0" / "tracks.parquet")
    return {
        "input": "woman2.mp4 looped 10x",
        "tracks": len(tracks),
        "pairs": runs,
        "median_share": statistics.median(r["share"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cost", type=int, default=0, metavar="N")
    args = parser.parse_args()
    truth = json.loads((MEDIA / "cuts.json").read_text())
    embedder = DlibEmbedder()
    result = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        (tmp / "in").mkdir()
        clip = tmp / "in" / "cuts.mp4"
        clip.write_bytes((MEDIA / "cuts.mp4").read_bytes())
        for name, config in (
            ("default", AnalyzerConfig()),
            ("every_frame", AnalyzerConfig(sample_fps=None)),
        ):
            runtime = Runtime.create(config)
            result[name] = measure(clip, tmp / name, runtime, truth, embedder)
        if args.cost:
            result["cost"] = cost(tmp, args.cost)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
