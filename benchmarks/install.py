"""Install size and time: the core install against the full one (``[dev]``).

Each install goes into a new virtual environment from the package index, with no
pip cache, one after the other: ``python -m benchmarks.install [--src DIR]``.
Prints seconds, the environment's size and its number of packages, and the
ratios of the core install to the full one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(command: list[str]) -> None:
    """Run quietly; on failure show what the command printed."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed: {' '.join(command)}")


def measure(src: Path, extras: str, where: Path) -> dict:
    """Install ``src[extras]`` into a new venv at ``where``."""
    _run([sys.executable, "-m", "venv", str(where)])
    pip = [str(where / "bin" / "python"), "-m", "pip"]
    _run([*pip, "install", "-q", "--upgrade", "pip"])
    start = time.perf_counter()
    _run([*pip, "install", "-q", "--no-cache-dir", f"{src}{extras}"])
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in where.rglob("*") if f.is_file())
    listed = subprocess.run(
        [*pip, "list", "--format=freeze"], capture_output=True, text=True, check=True
    )
    return {
        "seconds": seconds,
        "mib": size / 2**20,
        "packages": len(listed.stdout.splitlines()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.install")
    parser.add_argument("--src", type=Path, default=ROOT, help="project to install")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extras in (("core", ""), ("full [dev]", "[dev]")):
            results[name] = measure(args.src.resolve(), extras, Path(tmp) / "v")
            subprocess.run(["rm", "-rf", str(Path(tmp) / "v")], check=True)
            r = results[name]
            print(
                f"{name:>11}: {r['seconds']:6.1f} s  {r['mib']:7.0f} MiB  "
                f"{r['packages']} packages",
                flush=True,
            )
    core, full = results["core"], results["full [dev]"]
    print(
        f"core / full: time {core['seconds'] / full['seconds']:.2f}, "
        f"size {core['mib'] / full['mib']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
