"""Fit the temperature that calibrates a model's probabilities, on validation only.

``python -m training calibrate --model PATH --data ROOT`` predicts the validation
split once, finds the temperature that minimises its negative log-likelihood,
stores it in the model file's metadata (the analyzer and ``evaluate`` apply it)
and adds the before/after figures and a reliability diagram to the model card.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from emotion_contract.calibration import temper
from emotion_contract.modelfile import read_info, write_info

ECE_BINS = 15


def nll(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = np.asarray(probs, dtype=np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(p, 1e-12)).mean())


def reliability(
    labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS
) -> list[dict]:
    """Per equal-width confidence bin: its count, mean confidence and accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        out.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "n": n,
                "confidence": float(confidence[mask].mean()) if n else None,
                "accuracy": float(correct[mask].mean()) if n else None,
            }
        )
    return out


def ece(labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence|
    over equal-width bins of the top probability."""
    table = reliability(labels, probs, bins)
    total = sum(b["n"] for b in table)
    return float(
        sum(b["n"] * abs(b["accuracy"] - b["confidence"]) for b in table if b["n"])
        / max(total, 1)
    )


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """The temperature minimising NLL (a bounded scalar search over log T)."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(
        lambda log_t: nll(labels, temper(probs, float(np.exp(log_t)))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return round(float(np.exp(found.x)), 4)


def summary(labels: np.ndarray, probs: np.ndarray) -> dict:
    return {
        "accuracy": round(float((probs.argmax(1) == labels).mean()), 4),
        "ece": round(ece(labels, probs), 4),
        "nll": round(nll(labels, probs), 4),
    }


def calibrate(
    model_path: Path,
    data_root: Path,
    out: Path | None = None,
    *,
    cache_dir: Path | None = None,
) -> dict:
    """Fit and store the temperature of ``model_path`` (in place, or a copy at
    ``out``); returns the report written into the card.

    The model's raw output is what is fitted (a temperature already stored is
    replaced). Test figures are computed for the card only, after the fit.
    """
    from emotion_contract.layers import load_keras_model

    from .data import load_cached, load_validation
    from .evaluate import predict

    target = Path(out) if out else Path(model_path)
    info = read_info(model_path)
    model = load_keras_model(model_path)
    val = load_validation(data_root, cache_dir)
    raw_val = predict(model, val.images)
    temperature = fit_temperature(val.labels, raw_val)
    test = load_cached(data_root, "test", cache_dir)
    raw_test = predict(model, test.images)
    report = {"temperature": temperature, "bins": ECE_BINS}
    for split, data, raw in (("validation", val, raw_val), ("test", test, raw_test)):
        calibrated = temper(raw, temperature)
        report[split] = {
            "before": summary(data.labels, raw),
            "after": summary(data.labels, calibrated),
        }
    if target != Path(model_path):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, target)
    extra = info.extra | {"calibration": report}
    write_info(target, dataclasses.replace(info, temperature=temperature, extra=extra))
    diagram = target.parent / "reliability_diagram.png"
    plot_reliability(
        diagram,
        reliability(val.labels, raw_val),
        reliability(val.labels, temper(raw_val, temperature)),
        temperature,
    )
    _update_card(target, report)
    return report | {"model": str(target), "diagram": str(diagram)}


def _update_card(path: Path, report: dict) -> None:
    """Add the calibration to the card beside ``path``, when there is one."""
    from .card import refresh_card
    from .runlog import dump_json

    card_path = path.parent / "model_card.json"
    if not card_path.exists():
        return
    card = json.loads(card_path.read_text())
    card["calibration"] = report
    dump_json(card, card_path)
    refresh_card(path)


def plot_reliability(
    path: Path, before: list[dict], after: list[dict], temperature: float
) -> None:
    """Accuracy against confidence per bin, before and after calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for table, label in ((before, "raw"), (after, f"temperature {temperature:g}")):
        used = [b for b in table if b["n"]]
        ax.plot(
            [b["confidence"] for b in used],
            [b["accuracy"] for b in used],
            marker="o",
            label=label,
        )
    ax.set(
        xlabel="confidence (top probability)",
        ylabel="accuracy",
        title="Reliability (validation, 15 bins)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
