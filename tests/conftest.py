"""Fixtures: a fake detector registered by name, and a tiny constant Keras model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from analyzer.detectors import DETECTORS  # noqa: E402

from .helpers import BlobDetector, constant_model  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MEDIA = SHARED / "media"
FER = SHARED / "data" / "fer2013"

if "fake" not in DETECTORS:
    DETECTORS.register("fake")(BlobDetector)


@pytest.fixture(scope="session", autouse=True)
def litert_cache(tmp_path_factory):
    """Keep LiteRT copies made by tests out of the user's cache."""
    os.environ["EMOTION_ANALYZER_CACHE"] = str(tmp_path_factory.mktemp("litert"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return constant_model(tmp_path_factory.mktemp("model") / "constant.keras")


@pytest.fixture(scope="session")
def runtime(tiny_model):
    from analyzer.config import AnalyzerConfig
    from analyzer.runtime import Runtime

    return Runtime.create(AnalyzerConfig(model=tiny_model, detector="fake"))
