"""Render ``OUT/report/``: an index of every source, a page per video, a page per
image folder. Pages open from ``file://``: plotly.js is copied next to them once."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import zlib
from pathlib import Path, PurePosixPath

import pandas as pd

from emotion_contract.labels import EMOTIONS

from .charts import COLORS, timeline_figure
from .load import RunData, load_run
from .summaries import (
    emotion_shares,
    sample_interval,
    smoothed,
    timeline,
    top_episodes,
    track_summary,
)
from .thumbs import face_crop, read_frame, save_thumb

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["pct"] = lambda v: f"{100 * v:.0f}%"
    env.filters["num"] = lambda v, d=1: "" if v is None or v != v else f"{v:.{d}f}"
    env.filters["int"] = lambda v: "" if v is None or v != v else f"{int(v):,}"
    return env


def _slug(prefix: str, text: str) -> str:
    return f"{prefix}-{zlib.crc32(text.encode()):08x}"


def _copy_plotly(report: Path) -> None:
    import plotly

    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    dest = report / "static" / "plotly.min.js"
    if not dest.exists() or dest.stat().st_size != src.stat().st_size:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _atomic(dest, lambda tmp: shutil.copyfile(src, tmp))


def _atomic(dest: Path, write) -> None:
    """``write(tmp)`` then rename onto ``dest``: a full disk or a kill leaves the
    old file or none, never half of one."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        write(tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _write_page(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text))


def _clean(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _file(row: dict) -> Path:
    """The source's file: its exact bytes where known (names that are not UTF-8)."""
    raw = row.get("path_bytes")
    return Path(os.fsdecode(raw)) if raw else Path(row.get("path") or "")


def _stamp(face) -> float | None:
    t = face["timestamp_s"]
    return None if t is None or t != t else float(t)


def _source_thumb(run: RunData, row: dict, report: Path) -> str | None:
    faces = run.source_faces(row["source"])
    if len(faces):
        first = faces.iloc[0]
        frame = read_frame(
            _file(row), row["kind"], int(first["frame_index"]), _stamp(first)
        )
    else:
        frame = read_frame(_file(row), row["kind"], 0, 0.0)
    name = f"thumbs/{_slug('s', row['source'])}.jpg"
    if frame is None or not save_thumb(frame, report / name, 160):
        return None
    return name


def _track_thumbs(run: RunData, row: dict, report: Path) -> dict[int, str]:
    thumbs = {}
    faces = run.source_faces(row["source"])
    for track_id, track in faces.groupby("track_id"):
        # The detector's surest box (carried boxes have no score).
        best = track.loc[track["det_score"].fillna(-1.0).idxmax()]
        frame = read_frame(
            _file(row), row["kind"], int(best["frame_index"]), _stamp(best)
        )
        if frame is None:
            continue
        name = f"thumbs/{_slug('t', row['source'])}-{track_id}.jpg"
        crop = face_crop(frame, best[["x1", "y1", "x2", "y2"]].to_numpy(float))
        if crop.size and save_thumb(crop, report / name, 96):
            thumbs[int(track_id)] = name
    return thumbs


def _video_page(env, run: RunData, row: dict, report: Path, max_points: int) -> str:
    faces = run.source_faces(row["source"]).sort_values("timestamp_s")
    frames = run.source_frames(row["source"])
    interval = sample_interval(frames)
    episodes = run.source_episodes(row["source"])
    by_track = dict(tuple(episodes.groupby("track_id")))
    thumbs = _track_thumbs(run, row, report)
    tracks = []
    for track_id, track in faces.groupby("track_id"):
        mine = by_track.get(track_id, episodes.iloc[:0])
        data = timeline(smoothed(track), interval, max_points)
        tracks.append(
            {
                "id": int(track_id),
                "thumb": thumbs.get(int(track_id)),
                "start": float(track["timestamp_s"].min()),
                "end": float(track["timestamp_s"].max()),
                "rows": len(track),
                "episodes": len(mine),
                "figure": timeline_figure(data, mine),
                "summary": track_summary(track, mine, interval),
            }
        )
    tracks.sort(key=lambda t: -t["rows"])
    persons = _persons(faces, episodes, interval, max_points)
    no_face = int((frames["faces"] == 0).sum())
    page = f"{_slug('v', row['source'])}.html"
    _write_page(
        report / page,
        env.get_template("video.html").render(
            row=row,
            tracks=tracks,
            colors=COLORS,
            emotions=EMOTIONS,
            no_face_frames=no_face,
            interval=interval,
            longest=top_episodes(episodes),
            smoothing=run.facts.get("smoothing"),
            annotated=_annotated_link(run, row, report),
            persons=persons,
        ),
    )
    return page


def _persons(faces, episodes, interval: float, max_points: int) -> list[dict]:
    """One timeline per person (``person``, re-identification): all their tracks'
    smoothed rows in time order, with gaps where the person is off screen."""
    if "person" not in faces or faces["person"].isna().all():
        return []
    persons = []
    for person, rows in faces.dropna(subset=["person"]).groupby("person"):
        ids = sorted(int(t) for t in rows["track_id"].unique())
        mine = episodes[episodes["track_id"].isin(ids)]
        data = timeline(smoothed(rows.sort_values("timestamp_s")), interval, max_points)
        persons.append(
            {
                "id": int(person),
                "tracks": ids,
                "start": float(rows["timestamp_s"].min()),
                "end": float(rows["timestamp_s"].max()),
                "figure": timeline_figure(data, mine),
            }
        )
    return persons


def _annotated_link(run: RunData, row: dict, report: Path) -> str | None:
    """The video's annotated MP4 (``--annotate``) relative to the page, if on disk."""
    value = row.get("annotated")
    if not isinstance(value, str) or not (run.out / value).is_file():
        return None
    return os.path.relpath(run.out / value, report).replace(os.sep, "/")


def _folder_pages(env, run: RunData, rows: list[dict], report: Path) -> dict[str, str]:
    """One page per folder of images; returns source -> link (with an anchor)."""
    folders: dict[str, list[dict]] = {}
    for row in rows:
        if row["kind"] == "image" and row["status"] == "ok":
            folders.setdefault(str(PurePosixPath(row["source"]).parent), []).append(row)
    links = {}
    for folder, members in sorted(folders.items()):
        page = f"{_slug('f', folder)}.html"
        images = []
        for row in members:
            anchor = _slug("img", row["source"])
            links[row["source"]] = f"{page}#{anchor}"
            images.append(
                {"row": row, "anchor": anchor, "faces": _image_faces(run, row, report)}
            )
        _write_page(
            report / page,
            env.get_template("folder.html").render(
                folder=folder if folder != "." else "the top folder",
                images=images,
                colors=COLORS,
            ),
        )
    return links


def _image_faces(run: RunData, row: dict, report: Path) -> list[dict]:
    faces = run.source_faces(row["source"])
    thumbs = _track_thumbs(run, row, report) if len(faces) else {}
    result = []
    for _, face in faces.iterrows():
        top = sorted(EMOTIONS, key=lambda e: -face[e])[:3]
        result.append(
            {
                "thumb": thumbs.get(int(face["track_id"])),
                "top": [(e, float(face[e])) for e in top],
            }
        )
    return result


def render_report(out: Path, *, max_points: int = 1500) -> Path:
    """Render every page of ``out/report/``; returns the index's path."""
    run = load_run(out)
    report = out / "report"
    (report / "thumbs").mkdir(parents=True, exist_ok=True)
    _copy_plotly(report)
    env = _env()
    rows = [_clean(r) for r in run.sources.to_dict("records")]
    links = _folder_pages(env, run, rows, report)
    for row in rows:
        faces = run.source_faces(row["source"])
        row["shares"] = emotion_shares(faces)
        linked = faces["person"].dropna() if "person" in faces else faces.iloc[:0, 0]
        row["persons"] = int(linked.nunique()) if len(linked) else None
        row["thumb"] = (
            _source_thumb(run, row, report) if row["status"] == "ok" else None
        )
        if row["kind"] == "video" and row["status"] == "ok":
            row["link"] = _video_page(env, run, row, report, max_points)
        else:
            row["link"] = links.get(row["source"])
    index = report / "index.html"
    _write_page(
        index,
        env.get_template("index.html").render(
            facts=run.facts,
            rows=rows,
            people=_people_across(run, rows),
            colors=COLORS,
            emotions=EMOTIONS,
            totals=_totals(rows),
            rendered=dt.datetime.now().isoformat(timespec="seconds"),
        ),
    )
    return index


def _people_across(run: RunData, rows: list[dict]) -> list[dict]:
    """With ``--link-across-sources``: one row per person of the run, with the
    videos they appear in and their emotion shares over all of them."""
    faces = run.faces
    if not run.facts.get("link_across_sources") or "person" not in faces:
        return []
    links = {r["source"]: r.get("link") for r in rows}
    people = []
    for person, mine in faces.dropna(subset=["person"]).groupby("person"):
        sources = sorted(mine["source"].unique())
        people.append(
            {
                "id": int(person),
                "videos": [(s, links.get(s)) for s in sources],
                "tracks": int(mine.groupby(["source", "track_id"]).ngroups),
                "faces": len(mine),
                "shares": emotion_shares(mine),
            }
        )
    return people


def _totals(rows: list[dict]) -> dict:
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["status", "faces"])
    return {
        "sources": len(rows),
        **{s: int((frame["status"] == s).sum()) for s in ("ok", "failed", "skipped")},
        "faces": int(frame["faces"].fillna(0).sum()) if len(frame) else 0,
    }
