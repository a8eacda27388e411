"""Emotions over time, per track: smoothed probabilities, episodes, track summaries.

The smoother is a two-sided exponential kernel in time: a row's smoothed
probabilities are the mean of its track's rows weighted by ``2 ** (-|dt| /
half_life)``. It works on real timestamps (any sampling rate, irregular steps),
a gap much longer than the half-life lets the two sides barely touch, and it
never reaches across a shot cut (tracks end at cuts, and rows are grouped by shot
as well). Two passes of a recursive filter compute it in linear time. Rows
without a timestamp (images) are left as they are.

An *episode* is a maximal run of one smoothed top emotion within a track. A row
stands for the time from its timestamp to the track's next row (the last row:
one sampling step). Runs shorter than ``min_episode_s`` are merged, shortest
first, into their longer neighbour (the earlier on a tie), so every episode of a
track that lasts ``min_episode_s`` is at least that long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotion_contract.labels import EMOTIONS

METHOD = "two-sided exponential"


@dataclass(frozen=True)
class Timeline:
    """One source's face rows, smoothed and summarised."""

    smoothed: np.ndarray  # (n, 7) float32, in the rows' order
    episodes: dict[str, np.ndarray]  # columns of EPISODE_SCHEMA
    tracks: list[dict]  # rows of TRACK_SCHEMA


def smooth_series(t: np.ndarray, probs: np.ndarray, half_life_s: float) -> np.ndarray:
    """One track's probabilities ``(n, k)`` at times ``t`` (ascending), smoothed.

    ``half_life_s`` 0 returns them unchanged.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if half_life_s <= 0 or len(probs) < 2:
        return probs.astype(np.float32)
    decay = np.exp2(-np.diff(t) / half_life_s)  # weight between neighbours
    n = len(probs)
    fwd, fwd_w = probs.copy(), np.ones(n)
    for i in range(1, n):
        fwd[i] += decay[i - 1] * fwd[i - 1]
        fwd_w[i] += decay[i - 1] * fwd_w[i - 1]
    bwd, bwd_w = probs.copy(), np.ones(n)
    for i in range(n - 2, -1, -1):
        bwd[i] += decay[i] * bwd[i + 1]
        bwd_w[i] += decay[i] * bwd_w[i + 1]
    # Both passes count the row itself once.
    out = (fwd + bwd - probs) / (fwd_w + bwd_w - 1)[:, None]
    return out.astype(np.float32)


def row_durations(t: np.ndarray, step_s: float) -> np.ndarray:
    """How long each row of a track stands for: until the next row, the last
    one for ``step_s``."""
    return np.append(np.diff(t), step_s) if len(t) else np.zeros(0)


def runs(labels: np.ndarray, durations: np.ndarray, min_s: float) -> list[list[int]]:
    """``[label, first_row, end_row]`` runs of equal labels, short runs merged
    into their longer neighbour (module docstring)."""
    found: list[list[int]] = []
    for i, label in enumerate(labels):
        if found and found[-1][0] == label:
            found[-1][2] = i + 1
        else:
            found.append([int(label), i, i + 1])

    def length(r):
        return float(durations[r[1] : r[2]].sum())

    while len(found) > 1:
        short = [i for i, r in enumerate(found) if length(r) < min_s - 1e-9]
        if not short:
            break
        i = min(short, key=lambda j: (length(found[j]), j))
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(found)]
        into = max(neighbours, key=lambda j: (length(found[j]), -j))
        lo, hi = sorted((i, into))
        merged = [found[into][0], found[lo][1], found[hi][2]]
        found[lo : hi + 1] = [merged]
        # The merged run may now meet a run of its own label.
        for j in (lo - 1, lo):
            if 0 <= j < len(found) - 1 and found[j][0] == found[j + 1][0]:
                found[j : j + 2] = [[found[j][0], found[j][1], found[j + 1][2]]]
    return found


def analyse(
    source: str,
    columns: dict[str, np.ndarray],
    *,
    half_life_s: float,
    min_episode_s: float,
    step_s: float,
    frame_indices: np.ndarray,
) -> Timeline:
    """Smooth one source's face rows and summarise them per track.

    Args:
        columns: ``frame_index``, ``timestamp_s`` (NaN for images), ``shot``,
            ``track_id`` and the seven probabilities, one entry per face row.
        step_s: the source's sampling step (the last row of a track lasts it).
        frame_indices: every analyzed frame's index (for ``tracks.frames``).
    """
    probs = np.stack([columns[e] for e in EMOTIONS], axis=1).astype(np.float32)
    n = len(probs)
    smoothed = probs.copy()
    t_all = np.asarray(columns["timestamp_s"], dtype=np.float64)
    frame_all = np.asarray(columns["frame_index"])
    key = np.stack([columns["shot"], columns["track_id"]], axis=1)
    order = np.lexsort((frame_all, key[:, 1], key[:, 0]))
    groups = np.split(order, np.flatnonzero(np.any(np.diff(key[order], axis=0), 1)) + 1)
    episode_rows, tracks = [], []
    frame_indices = np.sort(np.asarray(frame_indices))
    for rows in groups if n else []:
        t = t_all[rows]
        timed = not np.isnan(t).any()
        if timed:
            smoothed[rows] = smooth_series(t, probs[rows], half_life_s)
        top = smoothed[rows].argmax(axis=1)
        durations = row_durations(t, step_s) if timed else np.ones(len(rows))
        shot, track = (int(v) for v in key[rows[0]])
        first, last = int(frame_all[rows[0]]), int(frame_all[rows[-1]])
        share = np.bincount(top, weights=durations, minlength=len(EMOTIONS))
        share /= max(share.sum(), 1e-12)
        in_span = np.searchsorted(frame_indices, [first, last + 1])
        tracks.append(
            {
                "source": source,
                "track_id": track,
                "shot": shot,
                "first_s": float(t[0]) if timed else None,
                "last_s": float(t[-1]) if timed else None,
                "frames": int(in_span[1] - in_span[0]),
                "faces": len(rows),
                **{f"{e}_share": float(share[i]) for i, e in enumerate(EMOTIONS)},
                "emotion": EMOTIONS[int(share.argmax())],
            }
        )
        if not timed:
            continue
        for label, lo, hi in runs(top, durations, min_episode_s):
            p = smoothed[rows[lo:hi], label]
            end = t[hi] if hi < len(t) else t[-1] + step_s
            episode_rows.append(
                (
                    source,
                    track,
                    shot,
                    EMOTIONS[label],
                    t[lo],
                    end,
                    hi - lo,
                    float(p.mean()),
                    float(p.max()),
                )
            )
    return Timeline(smoothed, _episode_columns(episode_rows), tracks)


def _episode_columns(rows: list[tuple]) -> dict[str, np.ndarray]:
    names = (
        "source",
        "track_id",
        "shot",
        "emotion",
        "start_s",
        "end_s",
        "frames",
        "mean_probability",
        "peak_probability",
    )
    cols = {name: [r[i] for r in rows] for i, name in enumerate(names)}
    out = {
        "source": np.array(cols["source"], dtype=object),
        "track_id": np.array(cols["track_id"], dtype=np.int64),
        "shot": np.array(cols["shot"], dtype=np.int64),
        "emotion": np.array(cols["emotion"], dtype=object),
        "start_s": np.array(cols["start_s"], dtype=np.float64),
        "end_s": np.array(cols["end_s"], dtype=np.float64),
        "frames": np.array(cols["frames"], dtype=np.int64),
        "mean_probability": np.array(cols["mean_probability"], dtype=np.float32),
        "peak_probability": np.array(cols["peak_probability"], dtype=np.float32),
    }
    out["duration_s"] = out["end_s"] - out["start_s"]
    return out
