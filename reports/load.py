"""Read an analyzer run's Parquet output into pandas."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from emotion_contract.labels import EMOTIONS
from emotion_contract.schema import (
    EPISODE_SCHEMA,
    EPISODES_DIR,
    FACE_SCHEMA,
    FACES_DIR,
    FRAME_SCHEMA,
    FRAMES_DIR,
    SMOOTHED,
    SOURCES_FILE,
    TRACK_SCHEMA,
    TRACKS_FILE,
)


class ReportError(ValueError):
    """The folder is not an analyzer output."""


@dataclass
class RunData:
    """One run: its facts (``run.json``) and its tables."""

    out: Path
    facts: dict
    sources: pd.DataFrame
    faces: pd.DataFrame
    frames: pd.DataFrame
    episodes: pd.DataFrame
    tracks: pd.DataFrame
    # Split by source once: the pages ask for a source's rows many times, and a
    # boolean mask over the whole table each time is quadratic in the sources.
    _by_source: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_source = {
            name: dict(tuple(getattr(self, name).groupby("source", sort=False)))
            for name in ("faces", "frames", "episodes", "tracks")
        }

    def _rows(self, table: str, source: str) -> pd.DataFrame:
        return self._by_source[table].get(source, getattr(self, table).iloc[:0])

    def source_faces(self, source: str) -> pd.DataFrame:
        return self._rows("faces", source)

    def source_frames(self, source: str) -> pd.DataFrame:
        return self._rows("frames", source)

    def source_episodes(self, source: str) -> pd.DataFrame:
        return self._rows("episodes", source)


def _dataset(folder: Path, columns: list[str]) -> pd.DataFrame:
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.read_parquet(folder)


def load_run(out: Path) -> RunData:
    """Load ``out``; faces of sources not in ``sources.parquet`` are left out.

    Raises:
        ReportError: ``out`` has no ``sources.parquet``.
    """
    path = out / SOURCES_FILE
    if not path.is_file():
        raise ReportError(f"{out} has no sources.parquet: run the analyzer first")
    sources = pd.read_parquet(path)
    facts_path = out / "run.json"
    facts = json.loads(facts_path.read_text()) if facts_path.is_file() else {}
    faces = _dataset(out / FACES_DIR, FACE_SCHEMA.names)
    if "emotion_smoothed" not in faces:  # written before smoothing existed
        for raw, smoothed in zip(EMOTIONS, SMOOTHED, strict=True):
            faces[smoothed] = faces[raw]
        faces["emotion_smoothed"] = faces["emotion"]
    frames = _dataset(out / FRAMES_DIR, FRAME_SCHEMA.names)
    episodes = _dataset(out / EPISODES_DIR, EPISODE_SCHEMA.names)
    tracks_path = out / TRACKS_FILE
    tracks = (
        pd.read_parquet(tracks_path)
        if tracks_path.is_file()
        else pd.DataFrame({c: pd.Series(dtype="object") for c in TRACK_SCHEMA.names})
    )
    known = set(sources["source"])
    return RunData(
        out,
        facts,
        sources,
        *(t[t["source"].isin(known)] for t in (faces, frames, episodes, tracks)),
    )
