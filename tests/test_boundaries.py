"""The packages talk through the contract only: parsed imports, not conventions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"analyzer", "training", "reports", "emotion_contract", "benchmarks"}


def imported(package: str) -> dict[str, set[str]]:
    """Our top-level packages each module of ``package`` imports, by file."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = (names & OURS) - {package}
    return found


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("emotion_contract", set()),
        ("training", {"emotion_contract"}),
        ("reports", {"emotion_contract"}),
        ("analyzer", {"emotion_contract", "reports"}),
    ],
)
def test_packages_import_only_the_contract(package, allowed):
    crossing = {f: names - allowed for f, names in imported(package).items()}
    assert {f: n for f, n in crossing.items() if n} == {}


def test_the_check_sees_imports():
    """The parser finds a crossing where there is one (benchmarks use everything)."""
    assert any("analyzer" in names for names in imported("benchmarks").values())
