"""The output folder: checked before any work, locked for one run at a time.

A run that cannot write its output should say so before it loads a model, and
two runs writing one folder would overwrite each other's parts and statuses, so
the second waits for nobody: it stops and names the first.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
from pathlib import Path

LOCK_FILE = ".lock"
# Free space below this stops a run before the next source (and before the first).
MIN_FREE_BYTES = 64 * 2**20


class OutputError(RuntimeError):
    """The output folder cannot be used; the message says why."""


class DiskFull(OutputError):
    """Too little free space left to write the next source safely."""


def write_json(path: Path, facts: dict) -> None:
    """Write ``facts`` as JSON under a temporary name renamed into place, so a
    reader (a dashboard polling ``run.json``) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(facts, indent=2) + "\n")
    tmp.replace(path)


def check_output(out: Path, inputs: list[Path]) -> None:
    """Make ``out`` (if needed) and check that it can hold this run's output.

    Raises:
        OutputError: ``out`` is a file, lies under a file, cannot be created or
            written, or is (or holds) one of the inputs.
    """
    real_out = os.path.realpath(out)
    for root in inputs:
        real_in = os.path.realpath(root)
        if real_in == real_out or real_in.startswith(real_out.rstrip(os.sep) + os.sep):
            raise OutputError(
                f"the output folder {out} would hold the input {root}; "
                "choose a folder outside the inputs"
            )
    if out.exists() and not out.is_dir():
        raise OutputError(f"the output {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"cannot write to the output folder {out}: {exc.strerror or exc}"
        ) from exc


def check_free_space(out: Path, needed: int | None = None) -> None:
    """Raises:
    DiskFull: fewer than ``needed`` (default ``MIN_FREE_BYTES``) bytes are free
        where ``out`` lies."""
    needed = MIN_FREE_BYTES if needed is None else needed
    free = shutil.disk_usage(out).free
    if free < needed:
        raise DiskFull(
            f"only {free / 2**20:.0f} MiB free under {out} (at least "
            f"{needed / 2**20:.0f} MiB needed); free some space and rerun the same "
            "command to continue"
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk or quota."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class OutputLock:
    """An exclusive lock on ``out`` for one run (``fcntl.flock`` on ``out/.lock``).

    The lock is released by the kernel when the process ends, however it ends, so
    a killed run never leaves a stale lock. The file names the holder.

    Raises:
        OutputError: on entry, when another run holds the lock.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            raise OutputError(
                f"{self.path.parent} is in use by another run ({_describe(holder)}); "
                "wait for it to finish or choose another --out"
            ) from None
        facts = {
            "pid": os.getpid(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(facts).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def _describe(holder: str) -> str:
    try:
        facts = json.loads(holder)
        return f"process {facts['pid']}, started {facts['started']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
