"""Where the shipped model lives: the analyzer's default and training's baseline."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED_MODEL = MODELS_DIR / "model.keras"
