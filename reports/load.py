"""Read an analyzer run's Parquet output into pandas."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from emotion_contract.schema import (
    FACE_SCHEMA,
    FACES_DIR,
    FRAME_SCHEMA,
    FRAMES_DIR,
    SOURCES_FILE,
)


class ReportError(ValueError):
    """The folder is not an analyzer output."""


@dataclass
class RunData:
    """One run: its facts (``run.json``) and its three tables."""

    out: Path
    facts: dict
    sources: pd.DataFrame
    faces: pd.DataFrame
    frames: pd.DataFrame
    # Split by source once: the pages ask for a source's rows many times, and a
    # boolean mask over the whole table each time is quadratic in the sources.
    _faces_by_source: dict = field(init=False, repr=False)
    _frames_by_source: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._faces_by_source = dict(tuple(self.faces.groupby("source", sort=False)))
        self._frames_by_source = dict(tuple(self.frames.groupby("source", sort=False)))

    def source_faces(self, source: str) -> pd.DataFrame:
        return self._faces_by_source.get(source, self.faces.iloc[:0])

    def source_frames(self, source: str) -> pd.DataFrame:
        return self._frames_by_source.get(source, self.frames.iloc[:0])


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
    frames = _dataset(out / FRAMES_DIR, FRAME_SCHEMA.names)
    known = set(sources["source"])
    return RunData(
        out,
        facts,
        sources,
        faces[faces["source"].isin(known)],
        frames[frames["source"].isin(known)],
    )
