"""Re-identification: face embeddings per track, and linking tracks into persons.

An embedding backend is a registry entry like the detectors; ``dlib`` is dlib's
ResNet face descriptor (128 numbers; faces aligned with its 5-point landmark
model), from the ``[reid]`` extra (``dlib-bin`` and ``face-recognition-models``,
models included, nothing downloaded). Embedding costs tens of milliseconds a face
on a CPU, so a track is embedded from a few chosen faces (:func:`choose_samples`),
and tracks are linked by :func:`link_tracks`: agglomerative clustering where two
groups merge only when every pair of their tracks is within the threshold and no
two of their tracks overlap in time (one person is never on screen twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotion_contract.extras import require

from .registry import Registry

EMBEDDERS: Registry = Registry("embedder")
# Track-to-track distance (Euclidean, mean descriptors) under which two tracks may
# be one person. dlib's own rule is 0.6; on cuts.mp4 and its mirrored, darker and
# zoomed copies the same person's tracks were at most 0.444 apart and different
# people's at least 0.583, so the default sits between (python -m benchmarks.reid).
DEFAULT_THRESHOLD = 0.5


@EMBEDDERS.register("dlib")
class DlibEmbedder:
    """dlib's face descriptor on the 5-point aligned 150 px chip of each box."""

    name = "dlib"

    def __init__(self) -> None:
        self.dlib = require("dlib", "reid", "Re-identification", package="dlib-bin")
        models = require(
            "face_recognition_models",
            "reid",
            "Re-identification",
            package="face-recognition-models",
        )
        self.shape = self.dlib.shape_predictor(
            models.pose_predictor_five_point_model_location()
        )
        self.net = self.dlib.face_recognition_model_v1(
            models.face_recognition_model_location()
        )

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(n, 128)`` descriptors of the faces in ``boxes`` (x1, y1, x2, y2) of a
        BGR ``image``."""
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

    def overlaps(self, other: TrackSpan) -> bool:
        return self.first_s <= other.last_s and other.first_s <= self.last_s


def choose_samples(
    frame_index: np.ndarray,
    timestamp_s: np.ndarray,
    side: np.ndarray,
    score: np.ndarray,
    *,
    k: int = 3,
    min_gap_s: float = 0.5,
) -> np.ndarray:
    """Indices of up to ``k`` rows of one track to embed: the largest, surest
    detections (side x score), at least ``min_gap_s`` apart so they differ."""
    quality = np.nan_to_num(score, nan=0.0) * side
    chosen: list[int] = []
    for i in np.argsort(-quality, kind="stable"):
        if quality[i] <= 0:
            break
        if all(abs(timestamp_s[i] - timestamp_s[j]) >= min_gap_s for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return np.asarray(chosen, dtype=np.int64)


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
    dist = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    groups = [[i] for i in range(len(spans))]
    while True:
        best, pair = None, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                d = dist[np.ix_(groups[a], groups[b])].max()
                if d > threshold or (best is not None and d >= best):
                    continue
                if any(
                    spans[i].overlaps(spans[j]) for i in groups[a] for j in groups[b]
                ):
                    continue
                best, pair = d, (a, b)
        if pair is None:
            break
        a, b = pair
        groups[a] += groups.pop(b)
    order = sorted(groups, key=lambda g: min(spans[i].first_s for i in g))
    return {spans[i].track_id: person for person, g in enumerate(order) for i in g}


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
