"""The core install (no ``[train]``, no ``[retinaface]``) analyzes video with the
shipped copies, and asking it for more names the extra to install.

Each check runs in a fresh interpreter in which the extras' packages cannot be
imported (``sys.modules[name] = None``, as if they were not installed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTRAS_ONLY = (
    "tensorflow",
    "keras",
    "tf_keras",
    "mtcnn",
    "retinaface",
    "matplotlib",
    "ray",
    "dlib",
    "face_recognition_models",
)

PRELUDE = f"""
import runpy, sys
for name in {EXTRAS_ONLY!r}:
    sys.modules[name] = None
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
finally:
    loaded = [n for n, m in sys.modules.items()
              if m is not None and n.split(".")[0] in {EXTRAS_ONLY!r}]
    assert not loaded, loaded
"""


def core(module: str, *args: str, cache: Path) -> subprocess.CompletedProcess:
    """``python -m module args`` without the extras' packages."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cache),
        "EMOTION_ANALYZER_CACHE": str(cache / "litert"),
    }
    return subprocess.run(
        [sys.executable, "-c", PRELUDE, module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_core_install_analyzes_with_the_shipped_copies(tmp_path):
    media = tmp_path / "in"
    media.mkdir()
    shutil.copy(ROOT / "samples" / "astronaut.jpg", media)
    out = tmp_path / "out"
    done = core("analyzer", str(media), "--out", str(out), "--quiet", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "detector: mtcnn [litert]" in done.stderr
    assert "[litert]" in done.stderr.split("model:")[1]
    faces = pd.read_parquet(out / "faces")
    assert len(faces) == 1 and faces["emotion"].notna().all()
    assert (out / "report" / "index.html").is_file()
    assert not (tmp_path / "litert").exists()  # nothing was converted
    assert json.loads((out / "run.json").read_text())["complete"]


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["--classifier-runtime", "keras"], "train"),
        (["--detector", "retinaface"], "retinaface"),
        (["--detector-runtime", "keras"], "train"),
        (["--engine", "ray"], "ray"),
    ],
)
def test_asking_for_an_extra_names_it(tmp_path, args, extra):
    done = core(
        "analyzer", str(tmp_path), "--out", str(tmp_path / "o"), *args, cache=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert f"pip install 'emotion-analytics[{extra}]'" in done.stderr
    assert f'pip install -e ".[{extra}]"' in done.stderr


def test_a_model_without_a_copy_names_the_train_extra(tmp_path, tiny_model):
    done = core(
        "analyzer",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
        "--model",
        str(tiny_model),
        cache=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'emotion-analytics[train]'" in done.stderr


def test_training_names_the_train_extra(tmp_path):
    done = core(
        "training",
        "train",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
        cache=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'emotion-analytics[train]'" in done.stderr
