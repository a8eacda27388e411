"""Re-identification: face embeddings per track, and linking tracks into persons.

An embedding backend is a registry entry like the detectors; ``dlib`` is dlib's
ResNet face descriptor (128 numbers; faces aligned with its 5-point landmark
model), from the ``[reid]`` extra (``dlib-bin`` and ``face-recognition-models``,
models included, nothing downloaded). Embedding costs tens of milliseconds a face
on a CPU, so a track is embedded from a few chosen faces (:class:`TrackSamples`),
and tracks are linked by :func:`link_tracks`: agglomerative clustering where two
groups merge only when every pair of their tracks is within the threshold and no
two of their tracks overlap in time (one person is never on screen twice).
With ``--link-across-sources``, :func:`link_across_sources` then links the
persons of different videos the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from emotion_contract.extras import require

from .registry import Registry

EMBEDDERS: Registry = Registry("embedder")
# Track-to-track distance (Euclidean, mean descriptors) under which two tracks may
# be one person. dlib's own rule is 0.6; on cuts.mp4 and its mirrored, darker and
# zoomed copies the same person's tracks were at most 0.44 apart and different
# people's at least 0.583, so the default sits between (python -m benchmarks.reid).
DEFAULT_THRESHOLD = 0.5


@EMBEDDERS.register("dlib")
class DlibEmbedder:
    """dlib's face descriptor on the 5-point aligned 150 px chip of each box."""

    name = "dlib"

    def __init__(self) -> None:
        self.dlib = require("dlib", "reid", "Re-identification", package="dlib-bin")
        self._models = require(
            "face_recognition_models",
            "reid",
            "Re-identification",
            package="face-recognition-models",
        )
        # Loading and the first (slow) call take about 0.3 s: done on a thread
        # while the first video is decoded and analyzed.
        self._ready = threading.Thread(target=self._load, name="reid-load", daemon=True)
        self._ready.start()

    def _load(self) -> None:
        self.shape = self.dlib.shape_predictor(
            self._models.pose_predictor_five_point_model_location()
        )
        self.net = self.dlib.face_recognition_model_v1(
            self._models.face_recognition_model_location()
        )
        blank = np.zeros((160, 160, 3), np.uint8)
        rect = self.dlib.rectangle(20, 20, 140, 140)
        self.net.compute_face_descriptor(blank, self.shape(blank, rect))

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(n, 128)`` descriptors of the faces in ``boxes`` (x1, y1, x2, y2) of a
        BGR ``image``."""
        self._ready.join()
        rgb = np.ascontiguousarray(image[..., ::-1])
        out = np.zeros((len(boxes), 128), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=float)):
            rect = self.dlib.rectangle(int(x1), int(y1), int(x2), int(y2))
            landmarks = self.shape(rgb, rect)
            out[i] = np.asarray(self.net.compute_face_descriptor(rgb, landmarks))
        return out


@dataclass(frozen=True)
class TrackSpan:
    """When a track is on screen (timestamps of its first and last rows)."""

    track_id: int
    first_s: float
    last_s: float


def track_embedding(vectors: np.ndarray) -> np.ndarray:
    """One vector for a track: the mean of its samples' descriptors."""
    return np.asarray(vectors, dtype=np.float64).mean(axis=0)


def link_tracks(
    spans: list[TrackSpan], embeddings: dict[int, np.ndarray], threshold: float
) -> dict[int, int]:
    """Person ids for the tracks that have an embedding (numbered from 0 by first
    appearance); tracks without one are left out.

    Complete linkage: two groups merge when the largest distance between their
    tracks is at most ``threshold`` and none of their tracks overlap in time;
    the closest such pair merges first.
    """
    spans = sorted(
        (s for s in spans if s.track_id in embeddings), key=lambda s: s.first_s
    )
    if not spans:
        return {}
    vectors = np.stack([embeddings[s.track_id] for s in spans])
    first = np.array([s.first_s for s in spans])
    last = np.array([s.last_s for s in spans])
    dist = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    blocked = (first[:, None] <= last[None]) & (first[None] <= last[:, None])
    groups = complete_linkage(dist, blocked, threshold)
    return {spans[i].track_id: person for person, g in enumerate(groups) for i in g}


def complete_linkage(
    dist: np.ndarray, blocked: np.ndarray, threshold: float
) -> list[list[int]]:
    """Agglomerative clustering of ``n`` items: groups (lists of item indices,
    ordered by their first item) where every pair is at most ``threshold`` apart
    and no pair is ``blocked``; the closest allowed pair of groups merges first.

    Between groups (a group sits at the index of its first member) the matrices
    hold the largest distance of any two of their items and whether any two are
    blocked; a merge updates both in place, so each step is one argmin.
    """
    dist = np.array(dist, dtype=np.float64)
    blocked = np.array(blocked, dtype=bool)
    np.fill_diagonal(blocked, True)
    members = [[i] for i in range(len(dist))]
    while len(dist):
        cost = np.where(blocked, np.inf, dist)
        a, b = sorted(np.unravel_index(np.argmin(cost), cost.shape))
        if not cost[a, b] <= threshold:
            break
        dist[a] = dist[:, a] = np.maximum(dist[a], dist[b])
        blocked[a] = blocked[:, a] = blocked[a] | blocked[b]
        blocked[a, a] = True
        blocked[b] = blocked[:, b] = True  # b is gone
        members[a] += members[b]
        members[b] = []
    return [sorted(g) for g in members if g]


@dataclass
class SourcePerson:
    """One person as linked within one source, with its tracks' vectors."""

    source: str
    person: int
    vectors: np.ndarray  # (tracks, size)


def link_across_sources(persons: list[SourcePerson], threshold: float) -> list[int]:
    """Run-wide person ids for persons linked within their sources (in the given
    order; ids numbered by first appearance in it).

    Complete linkage over every track of the persons: two persons merge when all
    their tracks are within ``threshold``; two persons of one source never merge
    (they were kept apart there). Time is not compared across sources: two
    recordings of one session may run at the same time.
    """
    if not persons:
        return []
    vectors = np.concatenate([p.vectors for p in persons]).astype(np.float64)
    starts = np.cumsum([0] + [len(p.vectors) for p in persons[:-1]])
    squares = (vectors**2).sum(axis=1)
    dist = np.zeros((len(persons), len(persons)))
    for i, person in enumerate(persons):  # one person's tracks against all: small
        mine = np.asarray(person.vectors, dtype=np.float64)
        d2 = (mine**2).sum(axis=1)[:, None] + squares[None] - 2 * mine @ vectors.T
        farthest = np.sqrt(np.maximum(d2, 0).max(axis=0))
        dist[i] = np.maximum.reduceat(farthest, starts)
    sources = np.array([p.source for p in persons], dtype=object)
    blocked = sources[:, None] == sources[None]
    ids = np.zeros(len(persons), dtype=np.int64)
    for run_id, group in enumerate(complete_linkage(dist, blocked, threshold)):
        ids[group] = run_id
    return ids.tolist()


def pairwise_scores(predicted: dict[int, int], truth: dict[int, str]) -> dict:
    """Pairwise precision and recall over tracks: of the pairs put together, how
    many are one person; of the pairs that are one person, how many were put
    together."""
    tracks = sorted(set(predicted) & set(truth))
    same_pred = same_true = both = 0
    for i, a in enumerate(tracks):
        for b in tracks[i + 1 :]:
            p = predicted[a] == predicted[b]
            t = truth[a] == truth[b]
            same_pred += p
            same_true += t
            both += p and t
    return {
        "tracks": len(tracks),
        "precision": both / same_pred if same_pred else 1.0,
        "recall": both / same_true if same_true else 1.0,
    }


def create_embedder(name: str):
    """``(resolved name, embedder, why it is off)`` for ``--reid NAME``.

    ``none`` turns re-identification off; ``auto`` is ``dlib`` when the
    ``[reid]`` extra is installed and off (with the reason) when not.

    Raises:
        MissingExtra: ``dlib`` was asked for and the extra is not installed.
        KeyError: an unknown backend name.
    """
    from emotion_contract.extras import MissingExtra

    if name == "none":
        return None, None, None
    if name == "auto":
        try:
            return "dlib", EMBEDDERS.create("dlib"), None
        except MissingExtra as exc:
            return None, None, str(exc)
    return name, EMBEDDERS.create(name), None


class TrackSamples:
    """Keeps, per track, the ``k`` best detections seen so far to embed later:
    large and sure (shorter side x detector score), at least ``min_gap_s`` apart,
    each as a crop around its box so the frame itself is not kept."""

    def __init__(self, k: int = 3, min_gap_s: float = 0.5, context: float = 0.5):
        self.k, self.min_gap_s, self.context = k, min_gap_s, context
        self.kept: dict[int, list[tuple[float, float, np.ndarray, np.ndarray]]] = {}

    def offer(self, image: np.ndarray, t: float | None, faces) -> None:
        h, w = image.shape[:2]
        t = 0.0 if t is None else float(t)
        for box, score, track in zip(
            faces.boxes, faces.scores, faces.track_ids, strict=True
        ):
            side = float(min(box[2] - box[0], box[3] - box[1]))
            quality = side * (0.0 if np.isnan(score) else float(score))
            if quality <= 0:
                continue
            kept = self.kept.setdefault(int(track), [])
            near = [i for i, s in enumerate(kept) if abs(s[1] - t) < self.min_gap_s]
            if near:
                i = near[0]
                if quality <= kept[i][0]:
                    continue
                del kept[i]
            elif len(kept) >= self.k:
                worst = min(range(len(kept)), key=lambda i: kept[i][0])
                if quality <= kept[worst][0]:
                    continue
                del kept[worst]
            pad = self.context * side
            x0, y0 = int(max(0, box[0] - pad)), int(max(0, box[1] - pad))
            x1, y1 = int(min(w, box[2] + pad)), int(min(h, box[3] + pad))
            crop = image[y0:y1, x0:x1].copy()
            kept.append((quality, t, crop, box - np.array([x0, y0, x0, y0])))

    def embed(self, embedder) -> dict[int, np.ndarray]:
        """Each track's vector: the mean descriptor of its kept faces."""
        return {
            track: track_embedding(
                np.stack(
                    [embedder.embed(crop, box[None])[0] for _, _, crop, box in kept]
                )
            )
            for track, kept in self.kept.items()
            if kept
        }


def person_rows(source: str, tracks: list[dict]) -> list[dict]:
    """One summary row per person from the source's track rows (which carry
    ``person``): tracks, time span, faces, and the share of each emotion over the
    person's tracks, weighted by each track's faces."""
    from emotion_contract.labels import EMOTIONS

    rows = []
    persons = sorted({t["person"] for t in tracks if t.get("person") is not None})
    for person in persons:
        mine = [t for t in tracks if t.get("person") == person]
        weights = np.array([t["faces"] for t in mine], dtype=float)
        shares = {
            f"{e}_share": float(
                np.average([t[f"{e}_share"] for t in mine], weights=weights)
            )
            for e in EMOTIONS
        }
        firsts = [t["first_s"] for t in mine if t["first_s"] is not None]
        lasts = [t["last_s"] for t in mine if t["last_s"] is not None]
        rows.append(
            {
                "source": source,
                "person": int(person),
                "tracks": len(mine),
                "first_s": min(firsts) if firsts else None,
                "last_s": max(lasts) if lasts else None,
                "faces": int(weights.sum()),
                **shares,
                "emotion": max(EMOTIONS, key=lambda e: shares[f"{e}_share"]),
            }
        )
    return rows
