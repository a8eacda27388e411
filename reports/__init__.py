"""HTML emotion timelines rendered from the analyzer's Parquet output.

Reads ``OUT/faces/``, ``OUT/frames/``, ``OUT/sources.parquet`` and ``OUT/run.json``
only; never the analyzer's internals.
"""

from __future__ import annotations

from pathlib import Path


def render(out: str | Path, **kwargs) -> Path:
    """Render ``OUT/report/`` and return the path of its ``index.html``."""
    from .pages import render_report

    return render_report(Path(out), **kwargs)
