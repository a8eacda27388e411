"""Numbers the pages show: emotion shares, episodes, and downsampled timelines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emotion_contract.labels import EMOTIONS


def emotion_shares(
    faces: pd.DataFrame, column: str = "emotion_smoothed"
) -> dict[str, float]:
    """Share of face rows whose most probable emotion (by default after smoothing
    over time) is each label."""
    if faces.empty:
        return dict.fromkeys(EMOTIONS, 0.0)
    counts = faces[column].value_counts(normalize=True)
    return {e: float(counts.get(e, 0.0)) for e in EMOTIONS}


def smoothed(track: pd.DataFrame) -> pd.DataFrame:
    """The track's smoothed probabilities under the emotions' own names."""
    data = track[["timestamp_s", *(f"{e}_smoothed" for e in EMOTIONS)]]
    return data.set_axis(["timestamp_s", *EMOTIONS], axis=1)


def sample_interval(frames: pd.DataFrame) -> float:
    """The typical time between analyzed frames (median gap), in seconds."""
    t = np.sort(frames["timestamp_s"].dropna().unique())
    return float(np.median(np.diff(t))) if len(t) > 1 else 1.0


def longest_episodes(track: pd.DataFrame, interval: float) -> dict[str, float]:
    """Per emotion, the longest stretch (s) it stayed dominant without a gap."""
    best = dict.fromkeys(EMOTIONS, 0.0)
    t = track["timestamp_s"].to_numpy()
    labels = track["emotion"].to_numpy()
    start = 0
    for i in range(1, len(t) + 1):
        if (
            i == len(t)
            or labels[i] != labels[start]
            or t[i] - t[i - 1] > 1.5 * interval
        ):
            length = t[i - 1] - t[start] + interval
            best[labels[start]] = max(best[labels[start]], float(length))
            start = i
    return best


def track_summary(
    track: pd.DataFrame, episodes: pd.DataFrame, interval: float
) -> list[dict]:
    """Rows of the per-track table: share of time and mean probability (smoothed),
    and the longest episode (from ``episodes/``; from the rows when it is empty)."""
    shares = emotion_shares(track)
    if len(episodes):
        longest = episodes.groupby("emotion")["duration_s"].max().to_dict()
    else:
        longest = longest_episodes(track, interval) if len(track) else {}
    return [
        {
            "emotion": e,
            "share": shares[e],
            "mean": float(track[f"{e}_smoothed"].mean()),
            "longest_s": float(longest.get(e, 0.0)),
        }
        for e in EMOTIONS
    ]


def top_episodes(episodes: pd.DataFrame, n: int = 10) -> list[dict]:
    """The ``n`` longest episodes of a source, longest first."""
    top = episodes.sort_values(["duration_s", "start_s"], ascending=[False, True])
    return top.head(n).to_dict("records")


def timeline(track: pd.DataFrame, interval: float, max_points: int) -> pd.DataFrame:
    """The track's probabilities against time, ready to plot.

    Long tracks are averaged into at most ``max_points`` time bins (full resolution
    stays in Parquet). A row of NaN is put wherever the track was absent for more
    than 1.5 sampling intervals, so the chart shows a gap instead of a bridge.
    """
    data = track[["timestamp_s", *EMOTIONS]].sort_values("timestamp_s")
    if len(data) > max_points:
        span = data["timestamp_s"].iloc[-1] - data["timestamp_s"].iloc[0]
        width = max(span / max_points, interval)
        bins = np.floor((data["timestamp_s"] - data["timestamp_s"].iloc[0]) / width)
        data = data.groupby(bins.to_numpy()).mean()
        interval = width
    t = data["timestamp_s"].to_numpy()
    gaps = np.flatnonzero(np.diff(t) > 1.5 * interval)
    if len(gaps):
        filler = pd.DataFrame({"timestamp_s": (t[gaps] + t[gaps + 1]) / 2})
        data = pd.concat([data, filler]).sort_values("timestamp_s")
    return data.reset_index(drop=True)
