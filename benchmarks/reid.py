"""Re-identification on edited footage with known people: cuts.mp4 and cuts.json.

Analyzes cuts.mp4 (8 shots, two people) at the default settings and at every
frame, embeds each track from the up to 3 detections the analyzer keeps for it
(its own ``TrackSamples``, fed the frames again) with dlib's descriptor
(:mod:`analyzer.reid`), links the tracks, and scores the links against the people
in cuts.json (a track's person is that of the shot holding its middle row):
pairwise precision and recall over tracks for thresholds around dlib's 0.6, the
largest same-person and smallest different-person distance between tracks, and
the time per embedded face. The same on mirrored, darker (x0.5) and zoomed (1.3x,
centre) copies of each kept face crop, to check the threshold on material it was
not chosen on.

The same chosen faces are also described by OpenCV's local binary pattern
histograms (LBPH, in the opencv-contrib wheel the project installs anyway), the
other face descriptor that works offline from what pip installs, to compare the
two by their margin between people.

``--across`` analyzes cuts.mp4 with woman2.mp4 and phone_street.mp4 (the files its
shots come from, one person each) and mirrored, darker and zoomed copies of those
two as separate videos, with ``--link-across-sources``, and scores the run-wide
person ids over every track of the nine files, and times the linking on 900
synthetic persons (300 videos x 3).

``--cost N`` also times N alternating pairs of whole runs on the 10x woman2 loop
with ``--reid none`` and ``--reid dlib`` (the share of a run re-identification
takes).

    python -m benchmarks.reid [--across] [--cost 3] [--json reid.json]
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
from analyzer.faces import Faces
from analyzer.reid import (
    DEFAULT_THRESHOLD,
    DlibEmbedder,
    SourcePerson,
    TrackSamples,
    TrackSpan,
    link_across_sources,
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


class LbphDescriptor:
    """OpenCV's LBPH face features (8x8 cells of 8-neighbour local binary pattern
    histograms) of a box's grayscale 96 px crop, square-rooted and unit-normed so
    that Euclidean distance is the Hellinger distance between histograms."""

    name = "lbph"

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        import cv2

        out = []
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for x1, y1, x2, y2 in np.asarray(boxes, dtype=float):
            crop = gray[max(0, int(y1)) : int(y2), max(0, int(x1)) : int(x2)]
            crop = cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA)
            recognizer = cv2.face.LBPHFaceRecognizer_create(1, 8, 8, 8)
            recognizer.train([crop], np.array([0]))
            hist = np.sqrt(np.maximum(recognizer.getHistograms()[0].ravel(), 0))
            out.append(hist / max(np.linalg.norm(hist), 1e-12))
        return np.stack(out)


def separation(vectors: dict, people: dict) -> dict:
    """Largest same-person and smallest different-person distance between tracks,
    and their ratio (above 1: one threshold separates the people)."""
    ids = [t for t in vectors if t in people]
    same, diff = [], []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            d = float(np.linalg.norm(vectors[a] - vectors[b]))
            (same if people[a] == people[b] else diff).append(d)
    result = {
        "same_person_max": round(max(same), 3) if same else None,
        "different_min": round(min(diff), 3) if diff else None,
    }
    if same and diff:
        result["margin_ratio"] = round(min(diff) / max(same), 3)
    return result


def chosen_faces(clip: Path, faces: pd.DataFrame) -> dict[int, list]:
    """The faces the analyzer embeds per track: its own ``TrackSamples`` fed the
    detected boxes of every analyzed frame again; ``(crop, box)`` per face."""
    samples = TrackSamples()
    detected = dict(tuple(faces[faces.box_source == "detected"].groupby("frame_index")))
    for frame in iter_video(clip, VideoInfo(), sample_fps=None):
        rows = detected.get(frame.index)
        if rows is not None:
            found = Faces(
                rows[["x1", "y1", "x2", "y2"]].to_numpy(),
                rows.det_score.to_numpy(),
                rows.track_id.to_numpy(),
            )
            samples.offer(frame.image, frame.timestamp_s, found)
    return {
        track: [(crop, box) for _, _, crop, box in kept]
        for track, kept in samples.kept.items()
        if kept
    }


def describe(chosen: dict, embedder, kind: str) -> tuple[dict, int, float]:
    """Each track's vector on the ``kind`` copy of its faces; faces, seconds."""
    vectors, n, started = {}, 0, time.perf_counter()
    for track, kept in chosen.items():
        per_face = []
        for crop, box in kept:
            image, b = variant(crop, box[None], kind)
            per_face.append(embedder.embed(image, b)[0])
            n += 1
        vectors[track] = track_embedding(np.stack(per_face))
    return vectors, n, time.perf_counter() - started


def measure(
    clip: Path, out: Path, runtime: Runtime, truth: dict, embedder, others=()
) -> dict:
    run([clip.parent], out, runtime, progress=False)
    faces = pd.read_parquet(out / "faces")
    faces = faces[faces.source == clip.name]
    people = truth_by_track(faces, truth)
    chosen = chosen_faces(clip, faces)
    spans = [
        TrackSpan(int(t), float(r.timestamp_s.min()), float(r.timestamp_s.max()))
        for t, r in faces.groupby("track_id")
    ]
    result = {"tracks": int(faces.track_id.nunique()), "labelled": len(people)}
    for kind in ("original", "mirrored", "darker", "zoomed"):
        vectors, n, seconds = describe(chosen, embedder, kind)
        result[kind] = {
            "faces_embedded": n,
            "ms_per_face": round(1000 * seconds / max(n, 1), 1),
            **separation(vectors, people),
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
    for other in others:  # the same faces, another descriptor
        result[other.name] = {}
        for kind in ("original", "mirrored", "darker", "zoomed"):
            vectors, n, seconds = describe(chosen, other, kind)
            result[other.name][kind] = {
                "ms_per_face": round(1000 * seconds / max(n, 1), 1),
                **separation(vectors, people),
            }
    return result


def write_variant(source: Path, target: Path, kind: str) -> Path:
    """A whole-video copy of ``source`` transformed frame by frame (``variant``)."""
    import cv2

    reader = cv2.VideoCapture(str(source))
    fps = reader.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    try:
        while True:
            ok, image = reader.read()
            if not ok:
                break
            image, _ = variant(image, np.zeros((0, 4)), kind)
            if writer is None:
                h, w = image.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(target), fourcc, fps, (w, h))
            writer.write(image)
    finally:
        reader.release()
        if writer is not None:
            writer.release()
    return target


def across(tmp: Path, truth: dict) -> dict:
    """Run-wide person ids over cuts.mp4, its two source files and copies of them."""
    root = tmp / "across"
    root.mkdir()
    people = {"woman2": "A", "phone_street": "B"}
    (root / "cuts.mp4").write_bytes((MEDIA / "cuts.mp4").read_bytes())
    for stem in people:
        (root / f"{stem}.mp4").write_bytes((MEDIA / f"{stem}.mp4").read_bytes())
        for kind in ("mirrored", "darker", "zoomed"):
            write_variant(MEDIA / f"{stem}.mp4", root / f"{stem}-{kind}.mp4", kind)
    out = tmp / "across-out"
    config = AnalyzerConfig(save_embeddings=True, link_across_sources=True)
    started = time.perf_counter()
    run([root], out, Runtime.create(config), progress=False)
    seconds = time.perf_counter() - started
    tracks = pd.read_parquet(out / "tracks.parquet")

    def person_of(row) -> str | None:
        if row.source != "cuts.mp4":
            return people[row.source.removesuffix(".mp4").split("-")[0]]
        middle = (row.first_s + row.last_s) / 2
        for seg in truth["segments"]:
            if seg["start_s"] <= middle < seg["end_s"]:
                return seg["person"]
        return None

    labels = {i: person_of(r) for i, r in enumerate(tracks.itertuples())}
    labels = {i: p for i, p in labels.items() if p}
    predicted = {i: int(p) for i, p in enumerate(tracks.person) if pd.notna(p)}
    # Distances between tracks of different files, from the stored vectors.
    stored = pd.read_parquet(out / "embeddings").merge(
        tracks[["source", "track_id"]].reset_index(), on=["source", "track_id"]
    )
    vectors = {int(r.index): np.asarray(r.embedding) for r in stored.itertuples()}
    same, diff = [], []
    keys = sorted(set(vectors) & set(labels))
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if tracks.source[a] != tracks.source[b]:
                d = float(np.linalg.norm(vectors[a] - vectors[b]))
                (same if labels[a] == labels[b] else diff).append(d)
    return {
        "files": int(tracks.source.nunique()),
        "tracks": len(tracks),
        "persons": int(tracks.person.nunique()),
        "wall_s": round(seconds, 1),
        **{
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in pairwise_scores(predicted, labels).items()
        },
        "across_files_same_person_max": round(max(same), 3),
        "across_files_different_min": round(min(diff), 3),
    }


def link_scale(videos: int = 300, per_video: int = 3, people: int = 200) -> dict:
    """Time ``link_across_sources`` on synthetic persons: ``videos`` x ``per_video``
    persons drawn from ``people`` random identities, two noisy tracks each."""
    rng = np.random.default_rng(0)
    identities = rng.normal(size=(people, 128))
    identities /= np.linalg.norm(identities, axis=1, keepdims=True)
    persons, truth = [], []
    for v in range(videos):
        for k, who in enumerate(rng.choice(people, per_video, replace=False)):
            tracks = identities[who] + rng.normal(scale=0.01, size=(2, 128))
            persons.append(SourcePerson(f"v{v}", k, tracks))
            truth.append(int(who))
    started = time.perf_counter()
    ids = link_across_sources(persons, DEFAULT_THRESHOLD)
    return {
        "persons": len(persons),
        "identities_present": len(set(truth)),
        "run_ids": len(set(ids)),
        "seconds": round(time.perf_counter() - started, 2),
    }


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
    parser.add_argument("--across", action="store_true")
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
            result[name] = measure(
                clip, tmp / name, runtime, truth, embedder, [LbphDescriptor()]
            )
        if args.across:
            result["across"] = across(tmp, truth)
            result["link_scale"] = link_scale()
        if args.cost:
            result["cost"] = cost(tmp, args.cost)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
