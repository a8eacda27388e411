"""Fit the calibration of a model's probabilities, on validation only.

``python -m training calibrate --model PATH --data ROOT`` predicts the validation
split once, finds the temperature that minimises its negative log-likelihood,
then the confidence map (isotonic regression of top-class correctness on the
tempered top probability; :mod:`emotion_contract.calibration`), stores both in the
model file's metadata (the analyzer and ``evaluate`` apply them) and adds the
before/after figures and a reliability diagram to the model card. Because a map
fitted and scored on the same images looks better than it is, the report also
gives a two-fold cross-fitted ECE and the ECE a perfectly calibrated model would
show on that many images (the estimate's floor).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from emotion_contract.calibration import map_confidence, temper
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
    return _bins(probs.max(axis=1), probs.argmax(axis=1) == labels, bins)


def _bins(confidence: np.ndarray, correct: np.ndarray, bins: int) -> list[dict]:
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
    return _ece(reliability(labels, probs, bins))


def _ece(table: list[dict]) -> float:
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


def fit_confidence_map(
    labels: np.ndarray, probs: np.ndarray, min_block: int = 50
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Knots of the monotone map from top probability to accuracy: isotonic
    regression (pool adjacent violators) of "the top class is right" on the top
    probability, pooled until every block holds ``min_block`` images, one knot per
    block at its mean confidence (linear in between, flat beyond)."""
    from scipy.optimize import isotonic_regression

    confidence = np.asarray(probs, dtype=np.float64).max(axis=1)
    order = np.argsort(confidence, kind="stable")
    x = confidence[order]
    right = (probs.argmax(axis=1) == labels)[order].astype(np.float64)
    fitted = isotonic_regression(right).x
    # Blocks of equal fitted value, merged forward until each has min_block rows.
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    bounds, n = [], len(x)
    start = 0
    for end in [*starts[1:], n]:
        if end - start >= min_block or end == n:
            bounds.append((start, end))
            start = end
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_block:
        (a, _), (_, b) = bounds[-2], bounds[-1]
        bounds[-2:] = [(a, b)]
    knots_x = [float(x[a:b].mean()) for a, b in bounds]
    knots_y = [float(right[a:b].mean()) for a, b in bounds]
    knots_y = list(np.maximum.accumulate(knots_y))  # merging keeps it monotone
    keep = [0] + [i for i in range(1, len(knots_x)) if knots_x[i] > knots_x[i - 1]]
    knots_x, knots_y = [knots_x[i] for i in keep], [knots_y[i] for i in keep]
    if len(knots_x) == 1:  # one block: a flat map
        knots_x, knots_y = [knots_x[0] - 1e-3, knots_x[0]], [knots_y[0]] * 2
    eps = 1e-4
    knots_y = [float(np.clip(v, eps, 1 - eps)) for v in knots_y]
    return (
        tuple(round(v, 6) for v in knots_x),
        tuple(round(v, 6) for v in knots_y),
    )


def cross_fitted_ece(
    labels: np.ndarray, probs: np.ndarray, *, folds: int = 2, repeats: int = 5
) -> float:
    """ECE of the confidence map on images it was not fitted on: fitted on one
    half of ``probs``, scored on the other, both ways, over random halvings."""
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(repeats):
        parts = np.array_split(rng.permutation(len(labels)), folds)
        for i, held in enumerate(parts):
            fit = np.concatenate([p for j, p in enumerate(parts) if j != i])
            knots = fit_confidence_map(labels[fit], probs[fit])
            scores.append(ece(labels[held], map_confidence(probs[held], knots)))
    return round(float(np.mean(scores)), 4)


def ece_floor(probs: np.ndarray, n: int, draws: int = 200) -> float:
    """The mean ECE of a perfectly calibrated model with these confidences on
    ``n`` images: the binning's own noise, which no calibration goes below."""
    rng = np.random.default_rng(1)
    confidence = np.asarray(probs, dtype=np.float64).max(axis=1)
    found = []
    for _ in range(draws):
        c = rng.choice(confidence, n)
        found.append(_ece(_bins(c, rng.random(n) < c, ECE_BINS)))
    return round(float(np.mean(found)), 4)


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
    confidence_map: bool = True,
) -> dict:
    """Fit and store the calibration of ``model_path`` (in place, or a copy at
    ``out``): the temperature, then (unless ``confidence_map`` is false) the map of
    the top probability; returns the report written into the card.

    The model's raw output is what is fitted (a calibration already stored is
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
    tempered_val = temper(raw_val, temperature)
    knots = fit_confidence_map(val.labels, tempered_val) if confidence_map else None
    test = load_cached(data_root, "test", cache_dir)
    raw_test = predict(model, test.images)
    report = {
        "temperature": temperature,
        "confidence_map_knots": len(knots[0]) if knots else 0,
        "bins": ECE_BINS,
    }
    for split, data, raw in (("validation", val, raw_val), ("test", test, raw_test)):
        tempered = temper(raw, temperature)
        # "after": what the model file now gives (with the map, "temperature" is
        # the temperature alone).
        report[split] = {"before": summary(data.labels, raw)}
        if knots:
            report[split]["temperature"] = summary(data.labels, tempered)
        report[split]["after"] = summary(data.labels, map_confidence(tempered, knots))
        report[split + "_ece_floor"] = ece_floor(tempered, len(data.labels))
    if knots:
        report["validation_cross_fitted"] = {
            "ece": cross_fitted_ece(val.labels, tempered_val),
            "ece_floor": ece_floor(tempered_val, len(val.labels) // 2),
        }
    if target != Path(model_path):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, target)
    extra = info.extra | {"calibration": report}
    calibrated = dataclasses.replace(
        info, temperature=temperature, confidence_map=knots, extra=extra
    )
    write_info(target, calibrated)
    diagram = target.parent / "reliability_diagram.png"
    curves = {
        "raw": reliability(val.labels, raw_val),
        f"temperature {temperature:g}": reliability(val.labels, tempered_val),
    }
    if knots:
        curves[f"temperature {temperature:g} + map"] = reliability(
            val.labels, map_confidence(tempered_val, knots)
        )
    plot_reliability(diagram, curves)
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


def plot_reliability(path: Path, curves: dict[str, list[dict]]) -> None:
    """Accuracy against confidence per bin, one line per stage of calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for label, table in curves.items():
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
        title=f"Reliability (validation, {ECE_BINS} bins)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
