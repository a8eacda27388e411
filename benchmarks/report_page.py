"""Size and load time of the report page of a one-hour video (18,000 face rows).

Builds the run the long-video test uses, renders it, then loads the page and an
empty page in headless Chromium; the difference is the page's own load time.

    python -m benchmarks.report_page   (from the repository root)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from reports import render

from .synthetic import BROWSER_FLAGS, hour_long_run


def load_seconds(url: str, profile: Path) -> float:
    browser = shutil.which("chromium") or "chromium"
    started = time.perf_counter()
    subprocess.run(
        [browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        hour_long_run(out)
        started = time.perf_counter()
        render(out)
        rendered = time.perf_counter() - started
        page = next((out / "report").glob("v-*.html"))
        blank = load_seconds("about:blank", out / "p1")
        loaded = load_seconds(page.as_uri(), out / "p2")
        print(
            f"rendered in {rendered:.2f} s; page {page.stat().st_size / 1e6:.2f} MB; "
            f"browser: {loaded:.2f} s for the page, {blank:.2f} s for an empty one"
        )


if __name__ == "__main__":
    main()
