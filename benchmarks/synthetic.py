"""Synthetic runs and the headless-browser settings shared by tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyzer.config import DEFAULT_MIN_EPISODE_S, DEFAULT_SMOOTH_S
from analyzer.records import write_sources, write_tracks
from analyzer.timeline import analyse
from emotion_contract.labels import EMOTIONS
from emotion_contract.schema import SMOOTHED, SourceRow

# Chromium as root in a sandbox with no network: no sandbox, no GPU, and none of
# the background connections that a closed network refuses.
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def hour_long_run(out: Path) -> None:
    """An hour of one track at 5 fps (18,000 rows), with a 60-second absence,
    smoothed and split into episodes as the analyzer does."""
    t = np.arange(18_000) / 5.0
    t = t[(t < 1000) | (t > 1060)]
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=len(t)).astype(np.float32)
    faces = pd.DataFrame(
        {
            "source": "long.mp4",
            "frame_index": np.arange(len(t)) * 6,
            "timestamp_s": t,
            "track_id": 0,
            "x1": 10.0,
            "y1": 10.0,
            "x2": 60.0,
            "y2": 60.0,
            "det_score": 0.99,
        }
    )
    for i, e in enumerate(EMOTIONS):
        faces[e] = probs[:, i]
    faces["emotion"] = np.array(EMOTIONS)[probs.argmax(axis=1)]
    faces["shot"] = 0
    found = analyse(
        "long.mp4",
        {c: faces[c].to_numpy() for c in ("frame_index", "timestamp_s", "shot")}
        | {"track_id": faces["track_id"].to_numpy()}
        | {e: faces[e].to_numpy() for e in EMOTIONS},
        half_life_s=DEFAULT_SMOOTH_S,
        min_episode_s=DEFAULT_MIN_EPISODE_S,
        step_s=0.2,
        frame_indices=faces["frame_index"].to_numpy(),
    )
    for i, column in enumerate(SMOOTHED):
        faces[column] = found.smoothed[:, i]
    faces["emotion_smoothed"] = np.array(EMOTIONS)[found.smoothed.argmax(axis=1)]
    (out / "faces").mkdir(parents=True)
    (out / "episodes").mkdir()
    pd.DataFrame(found.episodes).to_parquet(out / "episodes" / "long.parquet")
    write_tracks(out, found.tracks)
    (out / "frames").mkdir()
    faces.to_parquet(out / "faces" / "long.parquet")
    faces[["source", "frame_index", "timestamp_s"]].assign(faces=1).to_parquet(
        out / "frames" / "long.parquet"
    )
    row = SourceRow(
        source="long.mp4",
        kind="video",
        status="ok",
        frames_total=108_000,
        frames_analyzed=len(t),
        fps=30.0,
        duration_s=3600.0,
        faces=len(t),
        tracks=1,
        path=str(out / "missing.mp4"),
    )
    write_sources(out, [row])
