"""The local driver: every source under the inputs, resumed, into one output folder.

:func:`run` maps :func:`analyzer.pipeline.analyze_source` over the sources,
reuses parts already made with the same settings, writes ``tracks.parquet``,
``sources.parquet`` and ``run.json`` last, and removes parts that belong to no
``ok`` source.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emotion_contract.schema import ANNOTATED_DIR

from .annotate import annotate_video, annotated_name
from .outdir import check_free_space, is_disk_full, write_json
from .pipeline import analyze_source
from .records import (
    EMBEDDINGS_DIR,
    EPISODES_DIR,
    FACES_DIR,
    FRAMES_DIR,
    PART_DIRS,
    PERSONS_FILE,
    SHOTS_DIR,
    SOURCES_FILE,
    TRACKS_FILE,
    SourceRow,
    part_name,
    read_part_metadata,
    relabel_persons,
    write_persons,
    write_sources,
    write_tracks,
)
from .runtime import Runtime
from .sources import Source, find_sources

logger = logging.getLogger(__name__)


def reuse(source: Source, out: Path, runtime: Runtime) -> tuple[SourceRow | None, str]:
    """The stored row of a source already analyzed with the same settings, or
    ``None`` and why it is analyzed again (``""`` when it never was)."""
    if source.kind not in ("image", "video") or source.problem:
        return None, ""
    name = part_name(source.name)
    parts = {d: (out / d / name).is_file() for d in PART_DIRS}
    meta = read_part_metadata(out / FACES_DIR / name)
    if meta is None or not {"source_row", "tracks", "persons"} <= set(meta):
        return None, "part missing" if any(parts.values()) else ""
    if meta.get("settings_key") != runtime.key:
        return None, "settings changed"
    if meta.get("source_fingerprint") != source.fingerprint:
        return None, "file changed"
    stored = meta["source_row"]
    shots_wanted = source.kind == "video" and stored.get("frames_analyzed")
    embeddings_wanted = (
        source.kind == "video" and runtime.config.save_embeddings and runtime.embedder
    )
    if (
        not parts[FRAMES_DIR]
        or (shots_wanted and not (parts[SHOTS_DIR] and parts[EPISODES_DIR]))
        or (embeddings_wanted and not parts[EMBEDDINGS_DIR])
    ):
        return None, "part missing"
    # The stored row, but where the file is now (the input may have moved).
    where = {"path": source.path_text, "path_bytes": source.path_bytes}
    return SourceRow.from_dict(stored | where), ""


def prune_parts(out: Path, rows: list[SourceRow]) -> int:
    """Remove every part that is not an ``ok`` source of this run (inputs since
    deleted, emptied or failed, or earlier runs' leftovers); returns how many."""
    keep = {r.part for r in rows if r.status == "ok" and r.part}
    removed = 0
    videos = {annotated_name(p) for p in keep}
    for path in (
        (out / ANNOTATED_DIR).glob("*.mp4") if (out / ANNOTATED_DIR).is_dir() else []
    ):
        if path.name not in videos:
            path.unlink()
            removed += 1
    for d in PART_DIRS:
        for path in (out / d).glob("*.parquet") if (out / d).is_dir() else []:
            if path.name not in keep:
                path.unlink()
                removed += 1
    return removed


@dataclass
class RunSummary:
    """What :func:`run` did: every source's row, and how many were reused."""

    rows: list[SourceRow]
    reused: int = 0
    # Sources analyzed again although a part of theirs was there, by reason.
    reanalyzed: dict[str, int] = field(default_factory=dict)
    pruned: int = 0  # parts removed that belonged to no ok source of this run
    relabeled: int = 0  # parts whose person ids changed (--link-across-sources)

    @property
    def failed(self) -> list[SourceRow]:
        return [r for r in self.rows if r.status == "failed"]


# An engine analyzes the sources at the given indices and yields ``(index, row)``
# as each finishes, in any order: :func:`local_engine` here, or
# :func:`analyzer.ray_engine.ray_engine` on a Ray cluster.
Engine = Callable[[list[Source], list[int], Path, Runtime, bool], Iterator]


def local_engine(
    sources: list[Source], todo: list[int], out: Path, runtime: Runtime, progress: bool
) -> Iterator[tuple[int, SourceRow]]:
    """One source after another in this process."""
    for index in todo:
        check_free_space(out)
        yield index, analyze_source(sources[index], out, runtime, progress=progress)


def run(
    inputs: list[Path],
    out: Path,
    runtime: Runtime,
    *,
    progress: bool = True,
    on_failure: Callable[[SourceRow], None] | None = None,
    annotate: bool = False,
    on_warning: Callable[[str], None] | None = None,
    engine: Engine = local_engine,
    engine_facts: dict | None = None,
) -> RunSummary:
    """Analyze every source under ``inputs`` into ``out``, resuming finished ones.

    Sources already analyzed with the same settings are reused; ``engine`` analyzes
    the rest (each source's part written by whoever analyzed it). With
    ``annotate``, each ok video also gets ``OUT/annotated/<part>.mp4``
    (:mod:`analyzer.annotate`), made again when its rows are; a video that cannot
    be annotated keeps its rows and gets a warning.

    A source's part is in place as soon as that source is done, so an interrupted
    run loses at most the sources in progress and a rerun continues from there.
    While the run is going, ``run.json`` says ``"complete": false`` and there is
    no ``sources.parquet``; both are written when every source has been seen.

    Raises:
        DiskFull: free space ran low before a source, or the disk filled up while
            one was written (its temporary files are removed); the run stops.
    """
    out.mkdir(parents=True, exist_ok=True)
    check_free_space(out)
    _remove_temporaries(out)
    sources = find_sources(inputs, exclude=out)
    summary = RunSummary(rows=[])
    facts = engine_facts or {"engine": "local"}
    started = dt.datetime.now(dt.timezone.utc)
    (out / SOURCES_FILE).unlink(missing_ok=True)
    (out / TRACKS_FILE).unlink(missing_ok=True)
    (out / PERSONS_FILE).unlink(missing_ok=True)
    _write_run_facts(out, runtime, summary, started, complete=False, extra=facts)
    rows: list[SourceRow | None] = [None] * len(sources)
    todo = []
    for index, source in enumerate(sources):
        row, why = reuse(source, out, runtime)
        if row is not None:
            summary.reused += 1
            rows[index] = row
            continue
        if why:
            summary.reanalyzed[why] = summary.reanalyzed.get(why, 0) + 1
        # An annotated video made before shows the rows about to be replaced.
        old = out / ANNOTATED_DIR / annotated_name(part_name(source.name))
        old.unlink(missing_ok=True)
        todo.append(index)
    with tqdm(
        total=len(sources),
        initial=len(sources) - len(todo),
        desc="sources",
        unit="file",
        position=0,
        disable=not progress,
    ) as bar:
        for index, row in engine(sources, todo, out, runtime, progress):
            rows[index] = row
            if row.status == "failed" and on_failure:
                on_failure(row)
            bar.update(1)
    _remove_temporaries(out)  # those of workers that died mid-source
    for source, row in zip(sources, rows, strict=True):
        if row.status == "ok" and row.kind == "video" and row.part:
            row.annotated = _annotated(
                source, out, row.part, annotate, progress, on_warning
            )
        summary.rows.append(row)
    metas = _part_metadata(out, summary.rows)
    summary.relabeled = assign_persons(out, metas, runtime)
    write_tracks(out, [t for meta in metas.values() for t in meta.get("tracks", [])])
    write_persons(out, [p for meta in metas.values() for p in meta.get("persons", [])])
    write_sources(out, summary.rows)
    summary.pruned = prune_parts(out, summary.rows)
    _write_run_facts(out, runtime, summary, started, complete=True, extra=facts)
    return summary


def assign_persons(out: Path, metas: dict[str, dict], runtime: Runtime) -> int:
    """Settle the ``person`` ids of every ok source's part (``metas``: part name ->
    its metadata, updated in place): as linked within each source, or run-wide
    with ``--link-across-sources`` (persons of different sources linked by their
    stored track vectors, :func:`analyzer.reid.link_across_sources`). Parts whose
    ids change are rewritten; returns how many."""
    parts = list(metas)
    wanted = {
        part: {
            t["track_id"]: t.get("source_person", t.get("person"))
            for t in meta.get("tracks", [])
        }
        for part, meta in metas.items()
    }
    if runtime.config.link_across_sources and runtime.embedder is not None:
        _link_across_sources(out, parts, wanted, runtime.config.reid_threshold)
    return sum(relabel_persons(out, part, wanted[part], metas[part]) for part in parts)


def _link_across_sources(
    out: Path, parts: list[str], wanted: dict, threshold: float
) -> None:
    """Turn each part's own person ids in ``wanted`` into run-wide ones."""
    import pyarrow.parquet as pq

    from .reid import SourcePerson, link_across_sources

    found = []
    for part in parts:
        path = out / EMBEDDINGS_DIR / part
        if not path.is_file():
            continue
        table = pq.read_table(path, columns=["track_id", "embedding"])
        flat = table.column("embedding").combine_chunks().flatten().to_numpy()
        tracks = table.column("track_id").to_pylist()
        vectors = dict(zip(tracks, flat.reshape(len(tracks), -1), strict=True))
        local = wanted[part]
        for person in sorted({p for p in local.values() if p is not None}):
            mine = [v for t, v in vectors.items() if local.get(t) == person]
            if mine:
                found.append(SourcePerson(part, person, np.stack(mine)))
    ids = link_across_sources(found, threshold)
    run_ids = {(p.source, p.person): i for p, i in zip(found, ids, strict=True)}
    for part in parts:
        local = wanted[part]
        for track, person in local.items():
            local[track] = run_ids.get((part, person))


def _annotated(
    source: Source,
    out: Path,
    part: str,
    make: bool,
    progress: bool,
    on_warning: Callable[[str], None] | None,
) -> str | None:
    """The source's annotated video (made now if asked for and missing), relative
    to ``out``, or ``None``."""
    path = out / ANNOTATED_DIR / annotated_name(part)
    if make and not path.is_file():
        try:
            annotate_video(source, out, part, progress=progress)
        except Exception as exc:  # the rows are done; only the video is missing
            if is_disk_full(exc):
                raise
            message = f"{source.name}: no annotated video ({type(exc).__name__}: {exc})"
            logger.warning(message)
            if on_warning:
                on_warning(message)
    return path.relative_to(out).as_posix() if path.is_file() else None


def _part_metadata(out: Path, rows: list[SourceRow]) -> dict[str, dict]:
    """Each ok source's part metadata (its track and person rows), read once."""
    return {
        row.part: read_part_metadata(out / FACES_DIR / row.part) or {}
        for row in rows
        if row.status == "ok" and row.part
    }


def _remove_temporaries(out: Path) -> None:
    """Temporary parts a killed run left behind (the caller holds the lock, so
    no other run is writing them)."""
    for d in (*PART_DIRS, ANNOTATED_DIR):
        for path in (out / d).glob(".*.tmp*") if (out / d).is_dir() else []:
            path.unlink(missing_ok=True)


def _write_run_facts(
    out: Path,
    runtime: Runtime,
    summary: RunSummary,
    started: dt.datetime,
    *,
    complete: bool,
    extra: dict | None = None,
) -> None:
    rows = summary.rows
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    facts = (
        runtime.run_metadata()
        | {
            "complete": complete,
            "started": started.isoformat(timespec="seconds"),
            "finished": now if complete else None,
            "sources": len(rows),
            "ok": sum(r.status == "ok" for r in rows),
            "failed": len(summary.failed),
            "skipped": sum(r.status == "skipped" for r in rows),
            "reused": summary.reused,
            "reanalyzed": summary.reanalyzed,
            "pruned_parts": summary.pruned,
            "link_across_sources": runtime.config.link_across_sources,
            "relabeled_parts": summary.relabeled,
            "faces": sum(r.faces or 0 for r in rows),
        }
        | (extra or {})
    )
    write_json(out / "run.json", facts)
