"""Find the inputs: walk folders, name each file, and list what cannot be analyzed.

Every entry under an input ends up in ``sources.parquet``: media files are
analyzed; other files, folders with a media suffix, links that lead nowhere or in
a circle, and folders that cannot be read are listed with the reason. Names are
the paths relative to their INPUT, made unique across inputs; bytes that are not
UTF-8 (a name from another system's encoding) are written as ``\\xNN``, and the
exact bytes of the path are kept in ``path_bytes``.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


@dataclass(frozen=True)
class Source:
    """One input entry: its path, its name relative to its INPUT, and its kind.

    ``kind`` is ``image``, ``video`` or ``other`` (listed as skipped). ``problem``
    says why an entry cannot be analyzed at all (a broken link, an unreadable
    folder), with the ``problem_status`` it is listed under.
    """

    path: Path
    name: str
    kind: str
    problem: str | None = None
    problem_status: str = "skipped"

    @property
    def fingerprint(self) -> str:
        """Size and modification time: a changed file gets analyzed again."""
        try:
            st = self.path.stat()
        except OSError:
            return "unreadable"
        return f"{st.st_size}:{st.st_mtime_ns}"

    @property
    def path_text(self) -> str:
        """The absolute path, readable (undecodable bytes as ``\\xNN``)."""
        return readable(os.path.abspath(self.path))

    @property
    def path_bytes(self) -> bytes:
        """The absolute path's exact bytes."""
        return os.fsencode(os.path.abspath(self.path))


def readable(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 (surrogate escapes, as Python
    decodes such file names) written as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return "other"


def find_sources(
    inputs: Iterable[Path], *, exclude: Path | None = None
) -> list[Source]:
    """List every entry under ``inputs`` (files or folders, walked recursively).

    Args:
        inputs: files or folders.
        exclude: a folder to leave out (the output folder, if it is inside an input).

    Raises:
        FileNotFoundError: an input does not exist.
    """
    exclude_real = os.path.realpath(exclude) if exclude else None
    found: dict[str, Source] = {}
    for root in inputs:
        root = Path(root)
        if not os.path.lexists(root):
            raise FileNotFoundError(f"input {readable(str(root))} does not exist")
        if root.is_dir():
            base, entries = root, sorted(_walk(root, exclude_real))
        else:
            base, entries = root.parent, [_entry(root)]
        for path, problem, status in entries:
            name = _unique_name(path, base, found)
            kind = kind_of(path) if problem is None else "other"
            found[name] = Source(path, name, kind, problem, status)
    return list(found.values())


def _unique_name(path: Path, base: Path, found: dict[str, Source]) -> str:
    """``path`` relative to ``base``; when another input already holds that
    name, prefixed with as many of ``base``'s own folders as it takes."""
    relative = readable(path.relative_to(base).as_posix())
    prefixes = [p.name for p in (base.absolute(), *base.absolute().parents) if p.name]
    name, used = relative, 0
    while name in found and found[name].path != path:
        if used < len(prefixes):
            used += 1
            name = "/".join([*reversed(prefixes[:used]), relative])
        else:
            used += 1
            name = f"{relative} ({used - len(prefixes)})"
    if name != relative:
        logger.warning("two inputs hold %s; this one is named %s", relative, name)
    return name


def _entry(path: Path) -> tuple[Path, str | None, str]:
    """One entry that is not a folder: ``(path, problem, status)``."""
    try:
        st = os.stat(path)  # follows links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return path, "symbolic link loop", "skipped"
        if os.path.islink(path):
            return path, f"broken symbolic link to {os.readlink(path)}", "skipped"
        return path, f"cannot read: {exc.strerror or exc}", "failed"
    if stat.S_ISDIR(st.st_mode):
        return path, "symbolic link to a folder (not followed)", "skipped"
    if not stat.S_ISREG(st.st_mode):
        return path, "not a regular file", "skipped"
    return path, None, ""


def _walk(root: Path, exclude: str | None) -> Iterator[tuple[Path, str | None, str]]:
    """Every entry under ``root`` as ``(path, problem, status)``; symbolic links
    to folders are not followed, so no loop can make the walk endless."""
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            yield folder, f"cannot read folder: {exc.strerror or exc}", "failed"
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if exclude and os.path.realpath(path) == exclude:
                    continue
                folders.append(path)
                if kind_of(path) != "other":
                    yield (
                        path,
                        "a folder, not a file (its contents are listed)",
                        "skipped",
                    )
            else:
                yield _entry(path)
