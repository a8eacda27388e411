"""The files a training run writes beside its model: the CSV log and JSON facts.

Both the trainer and the model card read and write them, so they live apart from
both (no import cycle between ``train`` and ``card``).
"""

from __future__ import annotations

import json
from pathlib import Path


def read_log(path: Path) -> list[dict]:
    """Read the CSV training log as a list of rows of floats."""
    import csv

    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def dump_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
