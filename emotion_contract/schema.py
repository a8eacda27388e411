"""The output tables: folder and file names, and one pyarrow schema for each.

The analyzer writes exactly these columns (:mod:`analyzer.records`) and the reports
read them by these names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyarrow as pa

from .labels import EMOTIONS

META_KEY = b"emotion_analyzer"
FACES_DIR, FRAMES_DIR, SOURCES_FILE = "faces", "frames", "sources.parquet"
SHOTS_DIR, EPISODES_DIR, TRACKS_FILE = "shots", "episodes", "tracks.parquet"
PERSONS_FILE = "persons.parquet"
# --save-embeddings: each track's face vector (biometric data, never written unless
# asked), a part per video.
EMBEDDINGS_DIR = "embeddings"
EMBEDDING_SIZE = 128
ANNOTATED_DIR = "annotated"  # --annotate: one MP4 per video, not a table
# A source's parts, faces/ renamed last.
PART_DIRS = (SHOTS_DIR, EPISODES_DIR, EMBEDDINGS_DIR, FRAMES_DIR, FACES_DIR)
SMOOTHED = tuple(f"{e}_smoothed" for e in EMOTIONS)
SHARES = tuple(f"{e}_share" for e in EMOTIONS)

# How a face row's box was placed: found by the detector on that frame, or carried
# from the last detection by optical flow, held in place (``--no-box-flow``), or
# re-placed by MTCNN's last stage (``--refine``).
BOX_SOURCES = ("detected", "flow", "held", "refined")

FACE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("frame_index", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("shot", pa.int64()),
        ("track_id", pa.int64()),
        *[(c, pa.float32()) for c in ("x1", "y1", "x2", "y2", "det_score")],
        ("box_source", pa.string()),
        *[(e, pa.float32()) for e in EMOTIONS],
        ("emotion", pa.string()),
        # Over time within the track (analyzer.timeline); images: the raw values.
        *[(c, pa.float32()) for c in SMOOTHED],
        ("emotion_smoothed", pa.string()),
        # The track's person within the source, or within the run with
        # --link-across-sources (analyzer.reid); null when
        # re-identification is off or the track had no face to embed.
        ("person", pa.int64()),
    ]
)
RAW_FACE_SCHEMA = pa.schema(  # what the analyzer writes before smoothing
    [f for f in FACE_SCHEMA if f.name not in (*SMOOTHED, "emotion_smoothed", "person")]
)

EPISODE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("track_id", pa.int64()),
        ("shot", pa.int64()),
        ("emotion", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("frames", pa.int64()),
        ("mean_probability", pa.float32()),
        ("peak_probability", pa.float32()),
    ]
)

TRACK_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("track_id", pa.int64()),
        ("shot", pa.int64()),
        ("first_s", pa.float64()),
        ("last_s", pa.float64()),
        ("frames", pa.int64()),
        ("faces", pa.int64()),
        *[(c, pa.float64()) for c in SHARES],
        ("emotion", pa.string()),
        ("person", pa.int64()),
    ]
)

EMBEDDING_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("track_id", pa.int64()),
        ("person", pa.int64()),
        ("embedding", pa.list_(pa.float32(), EMBEDDING_SIZE)),
    ]
)

PERSON_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("person", pa.int64()),
        ("tracks", pa.int64()),
        ("first_s", pa.float64()),
        ("last_s", pa.float64()),
        ("faces", pa.int64()),
        *[(c, pa.float64()) for c in SHARES],
        ("emotion", pa.string()),
    ]
)

# Live mode (analyzer.live) adds to faces/ and frames/ the wall-clock time a frame
# arrived (seconds since the epoch) and the connection it came from (a reopened
# stream starts a new segment, and its timestamps may start again).
LIVE_COLUMNS = (("wall_time_s", pa.float64()), ("segment", pa.int64()))

FRAME_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("frame_index", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("shot", pa.int64()),
        ("faces", pa.int64()),
    ]
)

SHOT_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("shot", pa.int64()),
        ("first_frame", pa.int64()),
        ("last_frame", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("frames", pa.int64()),
    ]
)
# Columns where NaN is written as null: no timestamp (images), no detector score
# (carried boxes).
NULLABLE_FLOATS = frozenset(
    {"timestamp_s", "start_s", "end_s", "det_score", "first_s", "last_s"}
)

SOURCE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("frames_total", pa.int64()),
        ("frames_analyzed", pa.int64()),
        ("fps", pa.float64()),
        ("duration_s", pa.float64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("faces", pa.int64()),
        ("tracks", pa.int64()),
        ("frames_with_faces", pa.int64()),
        ("decode_errors", pa.int64()),
        ("rotation", pa.int64()),
        ("part", pa.string()),
        ("path", pa.string()),
        ("path_bytes", pa.binary()),
        # --annotate: the annotated video, relative to the output folder.
        ("annotated", pa.string()),
    ]
)


@dataclass
class SourceRow:
    """One row of ``sources.parquet``: its fields are :data:`SOURCE_SCHEMA`'s
    columns, in order (a test holds them together)."""

    source: str
    kind: str
    status: str = "ok"
    error: str | None = None
    frames_total: int | None = None
    frames_analyzed: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    faces: int | None = None
    tracks: int | None = None
    frames_with_faces: int | None = None
    decode_errors: int | None = None
    rotation: int | None = None
    part: str | None = None
    path: str | None = None
    path_bytes: bytes | None = None
    annotated: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SourceRow:
        """A row from stored values; keys that are not columns are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
