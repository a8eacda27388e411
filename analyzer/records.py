"""The Parquet output: schemas defined once, and an atomic per-source part writer.

Layout under ``OUT``:

- ``faces/PART.parquet``: one row per detected face per analyzed frame.
- ``frames/PART.parquet``: one row per analyzed frame (``faces`` may be 0), so a
  frame with no face can be told from a frame that was not analyzed.
- ``shots/PART.parquet``: one row per shot of a video (:mod:`analyzer.shots`).
- ``episodes/PART.parquet``: one row per episode of a video's tracks
  (:mod:`analyzer.timeline`).
- ``sources.parquet``: one row per input file; ``tracks.parquet``: one row per
  track (kept in each part's metadata until the run writes the table).

A part is written under a hidden temporary name (pyarrow and pandas skip names that
start with ``.``) and renamed when the source is complete, frames before faces: a
``faces/`` file exists only for a finished source. Face rows are streamed to a raw
temporary file first; when the source ends they are smoothed over time and
written again with the smoothed columns.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emotion_contract.labels import EMOTIONS
from emotion_contract.schema import (  # noqa: F401  (the writer's columns, re-exported)
    EMBEDDING_SCHEMA,
    EMBEDDING_SIZE,
    EMBEDDINGS_DIR,
    EPISODE_SCHEMA,
    EPISODES_DIR,
    FACE_SCHEMA,
    FACES_DIR,
    FRAME_SCHEMA,
    FRAMES_DIR,
    META_KEY,
    NULLABLE_FLOATS,
    PART_DIRS,
    PERSON_SCHEMA,
    PERSONS_FILE,
    RAW_FACE_SCHEMA,
    SHOT_SCHEMA,
    SHOTS_DIR,
    SMOOTHED,
    SOURCE_SCHEMA,
    SOURCES_FILE,
    TRACK_SCHEMA,
    TRACKS_FILE,
    SourceRow,
)

from . import reid, timeline

_NUMPY_TYPES = {
    pa.int64(): np.int64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def to_arrow(values, type: pa.DataType, *, nan_is_null: bool = False) -> pa.Array:
    """A column (a NumPy array, or a list with ``None`` for nulls) as Arrow.

    Built from buffers, because ``pa.array`` imports pandas the first time it is
    called, to ask whether its input is a pandas object: 0.3 s of a 7 s run,
    spent when a source's rows are written. Strings are str or ``None``,
    binary values bytes or ``None``;
    ``nan_is_null`` makes NaN a null, as pandas does.
    """
    n = len(values)
    if pa.types.is_string(type) or pa.types.is_binary(type):
        valid = np.array([v is not None for v in values], dtype=bool)
        encoded = [
            b"" if v is None else v if isinstance(v, bytes) else v.encode()
            for v in values
        ]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        buffers = [pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    else:
        dtype = _NUMPY_TYPES[type]
        if isinstance(values, np.ndarray) and values.dtype != object:
            data = np.ascontiguousarray(values, dtype=dtype)
            valid = ~np.isnan(data) if nan_is_null else np.ones(n, dtype=bool)
        else:
            valid = np.array([v is not None for v in values], dtype=bool)
            data = np.array([0 if v is None else v for v in values], dtype=dtype)
            if nan_is_null:
                valid &= ~np.isnan(data)
        buffers = [pa.py_buffer(data)]
    nulls = int(n - valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(type, n, [bitmap, *buffers], null_count=nulls)


def from_arrow(column: pa.ChunkedArray, dtype) -> np.ndarray:
    """A numeric column as NumPy, nulls as NaN, read from its buffers (like
    :func:`to_arrow`, without the pandas import of ``Array.to_numpy``)."""
    out = []
    for chunk in column.chunks:
        n, offset = len(chunk), chunk.offset
        validity, data = chunk.buffers()[:2]
        values = np.frombuffer(data, dtype=dtype)[offset : offset + n].copy()
        if chunk.null_count:
            bits = np.unpackbits(
                np.frombuffer(validity, dtype=np.uint8), bitorder="little"
            )[offset : offset + n]
            values[bits == 0] = np.nan
        out.append(values)
    return np.concatenate(out) if out else np.zeros(0, dtype=dtype)


def part_name(source: str) -> str:
    """A file-system-safe, unique file name for a source's part."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", source)[-80:].strip("._") or "source"
    return f"{safe}-{zlib.crc32(source.encode()):08x}.parquet"


def face_rows(
    source: str,
    frame_index: int,
    timestamp_s: float | None,
    faces,
    probs: np.ndarray,
    *,
    shot: int = 0,
    box_source: str = "detected",
) -> dict[str, np.ndarray]:
    """Column arrays for one frame's faces (``faces`` a :class:`Faces`; a NaN
    score, a box no detector scored, is written as null)."""
    n = len(faces)
    columns = {
        "source": np.full(n, source, dtype=object),
        "frame_index": np.full(n, frame_index, dtype=np.int64),
        "timestamp_s": np.full(n, np.nan if timestamp_s is None else timestamp_s),
        "shot": np.full(n, shot, dtype=np.int64),
        "track_id": faces.track_ids,
        "det_score": faces.scores,
        "box_source": np.full(n, box_source, dtype=object),
        "emotion": np.asarray(EMOTIONS, dtype=object)[probs.argmax(axis=1)]
        if n
        else np.zeros(0, dtype=object),
    }
    for i, name in enumerate(("x1", "y1", "x2", "y2")):
        columns[name] = faces.boxes[:, i]
    for i, name in enumerate(EMOTIONS):
        columns[name] = probs[:, i]
    return columns


class _Buffered:
    """Rows buffered in memory and flushed as row groups of a streaming writer."""

    def __init__(self, path: Path, schema: pa.Schema, flush_rows: int) -> None:
        self.path, self.schema, self.flush_rows = path, schema, flush_rows
        self._chunks: list[dict[str, np.ndarray]] = []
        self._pending = 0
        self.writer = pq.ParquetWriter(path, schema)

    def add(self, columns: dict[str, np.ndarray]) -> None:
        self._chunks.append(columns)
        self._pending += len(next(iter(columns.values())))
        if self._pending >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self._chunks:
            return
        merged = {
            name: np.concatenate([c[name] for c in self._chunks])
            for name in self.schema.names
        }
        arrays = [
            to_arrow(merged[f.name], f.type, nan_is_null=f.name in NULLABLE_FLOATS)
            for f in self.schema
        ]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self._chunks, self._pending = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


class PartWriter:
    """Writes one source's faces, frames, shots and episodes, atomically.

    Use as a context manager: on a clean exit the face rows are smoothed per track
    (:mod:`analyzer.timeline`) and the files are renamed into place (``faces/``
    last, so its presence means the source is complete; ``shots/`` and
    ``episodes/`` only for a video, when shots were added); on an exception the
    temporary files are removed, so nothing partial remains.

    Args:
        smooth_s: the smoother's half-life in seconds (0: off).
        min_episode_s: shorter runs of one emotion merge into a neighbour.

    Example:
        >>> with PartWriter(out, "clip.mp4-0a1b.parquet", {"k": "v"}) as part:
        ...     part.add_faces(face_rows(...)); part.add_frame("clip.mp4", 0, 0.0, 1)
    """

    def __init__(
        self,
        out: Path,
        name: str,
        metadata: dict,
        *,
        flush_rows: int = 20_000,
        smooth_s: float = 0.0,
        min_episode_s: float = 0.0,
        save_embeddings: bool = False,
    ) -> None:
        self.source = metadata.get("source", name)
        self.final = {d: Path(out) / d / name for d in PART_DIRS}
        self.tmp = {d: p.with_name(f".{p.name}.tmp") for d, p in self.final.items()}
        self.raw = self.final[FACES_DIR].with_name(f".{name}.raw.tmp")
        self.metadata, self.flush_rows = metadata, flush_rows
        self.smooth_s, self.min_episode_s = smooth_s, min_episode_s
        self.faces = self.frame_count = self.frames_with_faces = 0
        self.tracks: list[dict] = []
        self.persons: list[dict] = []
        self._embeddings: dict[int, np.ndarray] | None = None
        self.save_embeddings = save_embeddings
        self._reid_threshold = 0.0

    def __enter__(self) -> PartWriter:
        for path in self.tmp.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        self.shots = 0
        self._tables: list[_Buffered] = []
        self._frame_index: list[int] = []
        self._frame_time: list[float] = []
        try:
            for path, schema in (
                (self.raw, RAW_FACE_SCHEMA),
                (self.tmp[FRAMES_DIR], FRAME_SCHEMA),
                (self.tmp[SHOTS_DIR], SHOT_SCHEMA),
            ):
                self._tables.append(_Buffered(path, schema, self.flush_rows))
        except BaseException:  # e.g. a full disk: leave no temporary file behind
            self._discard()
            raise
        self._faces, self._frames, self._shots = self._tables
        return self

    def add_faces(self, columns: dict[str, np.ndarray]) -> None:
        self._faces.add(columns)
        self.faces += len(columns["frame_index"])

    def add_frame(
        self,
        source: str,
        index: int,
        timestamp_s: float | None,
        faces: int,
        shot: int = 0,
    ) -> None:
        self._frames.add(
            {
                "source": np.array([source], dtype=object),
                "frame_index": np.array([index], dtype=np.int64),
                "timestamp_s": np.array(
                    [np.nan if timestamp_s is None else timestamp_s]
                ),
                "shot": np.array([shot], dtype=np.int64),
                "faces": np.array([faces], dtype=np.int64),
            }
        )
        self._frame_index.append(index)
        self._frame_time.append(np.nan if timestamp_s is None else timestamp_s)
        self.frame_count += 1
        self.frames_with_faces += faces > 0

    def add_shots(self, columns: dict[str, np.ndarray]) -> None:
        """Rows of ``shots/`` (columns of :data:`SHOT_SCHEMA`)."""
        self._shots.add(columns)
        self.shots += len(columns["shot"])

    def set_embeddings(self, embeddings: dict, threshold: float) -> None:
        """Track vectors (:mod:`analyzer.reid`) to link into persons at the end."""
        self._embeddings, self._reid_threshold = embeddings, threshold

    def set_summary(self, row: SourceRow) -> None:
        """Store the source's ``sources.parquet`` row in the part (for resume;
        the path is stored where the file is found again)."""
        kept = {
            k: v for k, v in row.as_dict().items() if k not in ("path", "path_bytes")
        }
        self.metadata = self.metadata | {"source_row": kept}

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for table in self._tables:
                    table.close()
                self._write_timeline()
        except BaseException:  # a full disk while closing: keep nothing partial
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return
        if not self.shots:
            self.tmp[SHOTS_DIR].unlink(missing_ok=True)
            self.tmp[EPISODES_DIR].unlink(missing_ok=True)
        self.raw.unlink(missing_ok=True)
        if not self.tmp[EMBEDDINGS_DIR].exists():  # not asked for this time
            self.final[EMBEDDINGS_DIR].unlink(missing_ok=True)
        for d, tmp in self.tmp.items():
            if tmp.exists():
                tmp.replace(self.final[d])

    def _write_timeline(self) -> None:
        """Smooth the raw face rows into ``faces/``, and write ``episodes/``; the
        track rows go into the faces part's metadata (for ``tracks.parquet``)."""
        wanted = ["frame_index", "timestamp_s", "shot", "track_id", *EMOTIONS]
        raw = pq.ParquetFile(self.raw)
        table = raw.read(columns=wanted)
        columns = {
            f.name: from_arrow(table.column(f.name), _NUMPY_TYPES[f.type])
            for f in RAW_FACE_SCHEMA
            if f.name in wanted
        }
        times = np.asarray(self._frame_time, dtype=np.float64)
        steps = np.diff(times[~np.isnan(times)])
        found = timeline.analyse(
            self.source,
            columns,
            half_life_s=self.smooth_s,
            min_episode_s=self.min_episode_s,
            step_s=float(np.median(steps)) if len(steps) else 0.0,
            frame_indices=np.asarray(self._frame_index, dtype=np.int64),
        )
        persons = self._link(found.tracks)
        for track in found.tracks:
            # "source_person" stays as linked here; "person" may become a run-wide
            # id later (relabel_persons, --link-across-sources).
            track["person"] = track["source_person"] = persons.get(track["track_id"])
        self.tracks = found.tracks
        self.persons = reid.person_rows(self.source, found.tracks)
        self.metadata = self.metadata | {
            "tracks": found.tracks,
            "persons": self.persons,
        }
        faces = pq.ParquetWriter(self.tmp[FACES_DIR], FACE_SCHEMA)
        try:
            done = 0
            for group in range(raw.num_row_groups):
                chunk = raw.read_row_group(group)
                part = found.smoothed[done : done + chunk.num_rows]
                done += chunk.num_rows
                for i, name in enumerate(SMOOTHED):
                    chunk = chunk.append_column(
                        name, to_arrow(part[:, i], pa.float32())
                    )
                top = np.asarray(EMOTIONS, dtype=object)[part.argmax(axis=1)]
                chunk = chunk.append_column(
                    "emotion_smoothed", to_arrow(list(top), pa.string())
                )
                ids = chunk.column("track_id").to_pylist()
                chunk = chunk.append_column(
                    "person", to_arrow([persons.get(i) for i in ids], pa.int64())
                )
                faces.write_table(chunk.cast(FACE_SCHEMA))
            # File-level metadata goes into the footer, so it is written last.
            faces.add_key_value_metadata({META_KEY: json.dumps(self.metadata).encode()})
        finally:
            faces.close()
        if self.save_embeddings and self._embeddings is not None:
            self._write_embeddings(persons)
        if self.shots:
            episodes = _Buffered(self.tmp[EPISODES_DIR], EPISODE_SCHEMA, 1 << 30)
            episodes.add(found.episodes)
            episodes.close()

    def _write_embeddings(self, persons: dict[int, int]) -> None:
        tracks = sorted(self._embeddings)
        flat = np.zeros((len(tracks), EMBEDDING_SIZE), np.float32)
        for i, t in enumerate(tracks):
            flat[i] = self._embeddings[t]
        values = pa.Array.from_buffers(
            pa.float32(), flat.size, [None, pa.py_buffer(flat.ravel())]
        )
        columns = [
            to_arrow([self.source] * len(tracks), pa.string()),
            to_arrow(np.asarray(tracks, dtype=np.int64), pa.int64()),
            to_arrow([persons.get(t) for t in tracks], pa.int64()),
            pa.FixedSizeListArray.from_arrays(values, EMBEDDING_SIZE),
        ]
        table = pa.Table.from_arrays(columns, schema=EMBEDDING_SCHEMA)
        pq.write_table(table, self.tmp[EMBEDDINGS_DIR])

    def _link(self, tracks: list[dict]) -> dict[int, int]:
        """Person ids by track id, for tracks with an embedding and a time span."""
        spans = [
            reid.TrackSpan(t["track_id"], t["first_s"], t["last_s"])
            for t in tracks
            if t["first_s"] is not None
        ]
        return reid.link_tracks(spans, self._embeddings or {}, self._reid_threshold)

    def _discard(self) -> None:
        """Close what can be closed and remove every temporary file."""
        for table in self._tables:
            try:
                table.writer.close()
            except Exception:  # noqa: BLE001  (already failing; cleanup goes on)
                pass
        for path in (*self.tmp.values(), self.raw):
            path.unlink(missing_ok=True)


def relabel_persons(
    out: Path, part: str, persons: dict[int, int | None], meta: dict | None = None
) -> bool:
    """Give a finished part's tracks these person ids (by track id) in ``faces/``,
    in its metadata's track and person rows (``meta``, the part's metadata when
    already read, is updated in place), and in ``embeddings/``; returns whether
    anything changed. Each file is replaced atomically, and the ids are always
    derived from ``source_person``, so a run stopped halfway redoes it."""
    path = Path(out) / FACES_DIR / part
    meta = read_part_metadata(path) if meta is None else meta
    if not meta:
        return False
    tracks = meta.get("tracks", [])
    vectors = Path(out) / EMBEDDINGS_DIR / part
    # A run stopped between the two files leaves one of them behind: check both.
    stale_vectors = vectors.is_file() and _person_column_differs(vectors, persons)
    if not stale_vectors and all(
        persons.get(t["track_id"]) == t.get("person") for t in tracks
    ):
        return False
    for track in tracks:
        track["person"] = persons.get(track["track_id"])
    meta["persons"] = reid.person_rows(meta.get("source", part), tracks)
    if vectors.is_file():
        _replace_person_column(vectors, persons)
    _replace_person_column(path, persons, meta)
    return True


def _person_column_differs(path: Path, persons: dict[int, int | None]) -> bool:
    table = pq.read_table(path, columns=["track_id", "person"])
    tracks, ids = (table.column(c).to_pylist() for c in ("track_id", "person"))
    return any(persons.get(t) != p for t, p in zip(tracks, ids, strict=True))


def _replace_person_column(
    path: Path, persons: dict[int, int | None], metadata: dict | None = None
) -> None:
    """Rewrite a part's ``person`` column from its ``track_id`` column (and its
    metadata, when given), under a temporary name renamed into place."""
    table = pq.read_table(path)
    ids = table.column("track_id").to_pylist()
    column = to_arrow([persons.get(i) for i in ids], pa.int64())
    table = table.set_column(table.schema.get_field_index("person"), "person", column)
    if metadata is not None:
        table = table.replace_schema_metadata({META_KEY: json.dumps(metadata)})
    _replace(path, table)


def _replace(path: Path, table: pa.Table) -> None:
    """Write ``table`` under a hidden temporary name and rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_part_metadata(path: Path) -> dict | None:
    """The metadata of a finished part, or ``None`` if it is absent or unreadable."""
    try:
        meta = pq.ParquetFile(path).metadata.metadata or {}
        return json.loads(meta[META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None


def write_table(
    path: Path, columns: dict, schema: pa.Schema, metadata: dict | None = None
) -> Path:
    """Write one table under a hidden temporary name and rename it into place, so a
    reader never sees half a file; ``metadata`` goes under :data:`META_KEY`."""
    arrays = [
        to_arrow(columns[f.name], f.type, nan_is_null=f.name in NULLABLE_FLOATS)
        for f in schema
    ]
    table = pa.Table.from_arrays(arrays, schema=schema)
    if metadata is not None:
        table = table.replace_schema_metadata(
            {META_KEY: json.dumps(metadata, default=str)}
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, table)
    return path


def _write_rows(path: Path, rows: list, schema: pa.Schema, get) -> Path:
    columns = {f.name: [get(row, f.name) for row in rows] for f in schema}
    return write_table(path, columns, schema)


def write_sources(out: Path, rows: list[SourceRow]) -> Path:
    """Write ``sources.parquet`` atomically."""
    return _write_rows(Path(out) / SOURCES_FILE, rows, SOURCE_SCHEMA, getattr)


def write_persons(out: Path, rows: list[dict]) -> Path:
    """Write ``persons.parquet`` atomically (rows of :data:`PERSON_SCHEMA`)."""
    return _write_rows(Path(out) / PERSONS_FILE, rows, PERSON_SCHEMA, dict.get)


def write_tracks(out: Path, rows: list[dict]) -> Path:
    """Write ``tracks.parquet`` atomically (rows of :data:`TRACK_SCHEMA`; a column
    a row lacks is null, ``person`` where nothing was linked)."""
    return _write_rows(Path(out) / TRACKS_FILE, rows, TRACK_SCHEMA, dict.get)
