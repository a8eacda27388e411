"""``python -m reports OUT``: render OUT/report/ from an analyzer run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("out", type=Path, help="the analyzer's --out folder")
    parser.add_argument(
        "--max-points",
        type=int,
        default=1500,
        help="most points drawn per track timeline; longer tracks are "
        "averaged into time bins (default: 1500)",
    )
    args = parser.parse_args(argv)
    from . import render
    from .load import ReportError

    try:
        path = render(args.out, max_points=args.max_points)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
