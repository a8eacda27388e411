"""Save the trained model with its metadata and write its model card.

The card (``model_card.md`` and ``model_card.json`` beside the model) holds
validation and test metrics, per-class scores, the confusion matrix (also as a
PNG), the training curves and the run's facts.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from emotion_contract.labels import EMOTIONS
from emotion_contract.modelfile import ModelInfo, file_sha256, write_info

from .data import SPLIT_SEED, load_cached, stratified_split
from .evaluate import metrics, predict
from .model import INPUT_SIZE
from .runlog import dump_json, read_log

logger = logging.getLogger(__name__)

# The crop margin a new model starts with; the margin that frames a face the way
# FER2013 does depends on the detector and is measured on validation faces and
# written into the model by `python -m benchmarks.framing --split val
# --write-margin` (docs/model.md, "Face framing").
DEFAULT_CROP_MARGIN = 0.0


def save_with_card(model, path: Path, config, facts: dict) -> None:
    """Evaluate on validation and test, save ``path`` with metadata, write the card."""
    full = load_cached(config.data, "train", config.cache_dir)
    _, val = stratified_split(full, val_fraction=config.val_fraction)
    test = load_cached(config.data, "test", config.cache_dir)
    results = {
        "validation": metrics(val.labels, predict(model, val.images)),
        "test": metrics(test.labels, predict(model, test.images)),
    }
    model.save(path)
    info = ModelInfo(
        class_names=EMOTIONS,
        input_size=(INPUT_SIZE, INPUT_SIZE),
        color_mode="grayscale",
        input_scale=(0.0, 255.0),
        crop_margin=DEFAULT_CROP_MARGIN,
        name=f"{model.name}-{dt.date.today():%Y%m%d}",
        extra={
            "recipe": config.recipe.to_dict(),
            "accuracy": {k: v["accuracy"] for k, v in results.items()},
            "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "data": str(config.data),
            **facts,
        },
    )
    write_info(path, info)
    write_card(path, info, results)


def write_card(path: Path, info: ModelInfo, results: dict) -> None:
    """Write ``model_card.md``/``.json``, the confusion PNG and the curves PNG."""
    out = path.parent
    log = read_log(out / "training_log.csv")
    plots(out, results["test"]["confusion_matrix"], log)
    card = {
        "model": path.name,
        "sha256": file_sha256(path),
        "metadata": {k: v for k, v in info.__dict__.items() if k != "extra"},
        **info.extra,
        "results": results,
        "epochs_logged": len(log),
    }
    dump_json(card, out / "model_card.json")
    (out / "model_card.md").write_text(_markdown(card))


def save_derived(
    model, source: Path, out: Path, *, key: str, suffix: str, report: dict, data
) -> None:
    """Save ``model``, made from the model at ``source``, with metadata and card.

    Args:
        key: where the choice's ``report`` goes in the metadata's extra facts.
        suffix: appended to the source model's name.
        data: ``(validation, test)`` splits, for the card's metrics.
    """
    import dataclasses
    import shutil

    from emotion_contract.modelfile import read_info

    val, test = data
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    results = {
        "validation": metrics(val.labels, predict(model, val.images)),
        "test": metrics(test.labels, predict(model, test.images)),
    }
    info = read_info(source)
    extra = info.extra | {
        key: {k: v for k, v in report.items() if k != "saved"},
        "accuracy": {k: v["accuracy"] for k, v in results.items()},
    }
    extra.pop("calibration", None)  # a new network: calibrate it again
    derived = dataclasses.replace(
        info, name=info.name + suffix, extra=extra, temperature=1.0, confidence_map=None
    )
    write_info(out, derived)
    log = source.parent / "training_log.csv"
    if log.exists() and log.parent != out.parent:
        shutil.copyfile(log, out.parent / "training_log.csv")
    write_card(out, read_info(out), results)


def refresh_card(path: Path) -> None:
    """Update the card beside ``path`` after its metadata changed (hash, margin)."""
    import json

    from emotion_contract.modelfile import read_info

    card_path = path.parent / "model_card.json"
    if not card_path.exists():
        return
    card = json.loads(card_path.read_text())
    info = read_info(path)
    card["sha256"] = file_sha256(path)
    card["metadata"] = {k: v for k, v in info.__dict__.items() if k != "extra"}
    dump_json(card, card_path)
    (path.parent / "model_card.md").write_text(_markdown(card))


def plots(out: Path, confusion: list[list[int]], log: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.asarray(confusion, dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45)
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            int(count),
            ha="center",
            va="center",
            color="white" if share[i, j] > 0.5 else "black",
            fontsize=8,
        )
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    plt.close(fig)
    if not log:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(log) + 1)
    for key, axis in (("accuracy", left), ("loss", right)):
        axis.plot(epochs, [r[key] for r in log], label="train")
        axis.plot(epochs, [r[f"val_{key}"] for r in log], label="validation")
        axis.set(xlabel="epoch", ylabel=key)
        axis.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=110)
    plt.close(fig)


def _markdown(card: dict) -> str:
    val, test = card["results"]["validation"], card["results"]["test"]
    rows = "\n".join(
        f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} "
        f"| {s['support']} |"
        for name, s in ((e, test["per_class"][e]) for e in EMOTIONS)
    )
    header = "| true \\ predicted | " + " | ".join(EMOTIONS) + " |"
    matrix = "\n".join(
        f"| {name} | " + " | ".join(str(v) for v in row) + " |"
        for name, row in zip(EMOTIONS, test["confusion_matrix"], strict=True)
    )
    recipe = card["recipe"]
    flip = card.get("flip_average")
    views = "the face and its mirror"
    if flip and (flip.get("shift") or flip.get("zoom")):
        views = (
            f"a window moved by {flip['shift']:+g} and widened by {flip['zoom']:+g} "
            "of the crop, and the mirror of the opposite window"
        )
    flip_line = (
        f"- Flip averaging (the mean of the outputs on {views}), kept "
        f"because it beat the plain model on validation: "
        f"{flip['validation_plain']:.4f} -> {flip['validation_flip_average']:.4f}.\n"
        if flip
        else ""
    )
    calibration = _calibration_md(card.get("calibration"))
    selection = _selection_md(card)
    data = card.get("data", "FER2013_ROOT")
    return f"""# Model card: {card["metadata"]["name"]}

EfficientNetB1 (keras.applications, include_top=False) + dropout + 7-way softmax,
trained by `python -m training train` with the `{recipe["name"]}` recipe on FER2013
(Kaggle folder layout). Input: raw {card["metadata"]["input_size"][0]}x\
{card["metadata"]["input_size"][1]} {card["metadata"]["color_mode"]} face crops,
pixel values 0..255; resizing and normalisation happen inside the model.

| split | images | accuracy | macro F1 |
|---|---:|---:|---:|
| validation (stratified 20% of train, seed {SPLIT_SEED}) | {val["n"]} | \
{val["accuracy"]:.4f} | {val["macro_f1"]:.4f} |
| test (PublicTest) | {test["n"]} | {test["accuracy"]:.4f} | {test["macro_f1"]:.4f} |

{selection} The test split was used for this report only.
Reproduce the test figure with
`python -m training evaluate --data {data} --split test`.

## Per class (test)

| class | precision | recall | F1 | support |
|---|---:|---:|---:|---:|
{rows}

## Confusion matrix (test)

{header}
|{"---|" * (len(EMOTIONS) + 1)}
{matrix}

![confusion matrix](confusion_matrix.png)
{calibration}
## Training

![training curves](training_curves.png)

- Recipe: `{recipe["name"]}`, input resized to {recipe["image_size"]} px, batch \
{recipe["batch_size"]}, dropout {recipe["dropout"]}, label smoothing \
{recipe["label_smoothing"]}, class-weight power {recipe["class_weight_power"]}.
- Augmentation: {_augmentation_md(recipe)}.
- Phases: {
        "; ".join(
            f"{p['name']}: {p['epochs']} epochs, lr {p['learning_rate']}, "
            f"{p['optimizer']}, {p['schedule']}"
            for p in recipe["phases"]
        )
    }.
{flip_line}- Started from: {card["init"] or "random initialisation"}.
- Wall time: {(card["wall_time_s"] or 0) / 3600:.2f} h on {card["hardware"]}.
- Epochs logged: {card["epochs_logged"]}.
- Data: {card["train_images"]} training and {card["val_images"]} validation images,
  SHA-256 of the train split {card["data_sha256"][:16]}...
- Crop margin stored for the analyzer: {card["metadata"]["crop_margin"]} (measured
  with `python -m training framing --split val`).
- Model file SHA-256: {card["sha256"]}.
"""


def _augmentation_md(recipe: dict) -> str:
    """The recipe's training augmentation in words (older cards lack newer keys)."""
    parts = ["horizontal flip", f"rotation up to {recipe['rotation']} turn"]
    if recipe.get("translation"):
        parts.append(f"shift up to {recipe['translation']}")
    if recipe.get("zoom"):
        parts.append(f"zoom up to {recipe['zoom']}")
    if recipe.get("erasing"):
        parts.append(f"random erasing on {recipe['erasing']:.0%} of faces")
    if recipe.get("mixup"):
        parts.append(f"mixup, Beta({recipe['mixup']}, {recipe['mixup']})")
    if recipe.get("stability"):
        parts.append(f"stability loss x{recipe['stability']}")
    return ", ".join(parts)


def _selection_md(card: dict) -> str:
    """How the saved weights were chosen: best validation epoch, or a cycle's end."""
    if card.get("accelerator"):
        return (
            "The weights are the last epoch's: `python -m training.accelerator` "
            "fits one cosine cycle into a time budget and keeps where it ends."
        )
    averaged = card.get("weight_average")
    if averaged:
        epochs = ", ".join(
            Path(w).name.removeprefix("epoch-").removesuffix(".weights.h5")
            for w in averaged["snapshots"]
        )
        return (
            f"The weights are the mean of {len(averaged['snapshots'])} epochs' "
            f"snapshots (epochs {epochs} of the run)"
            + (
                ", BatchNorm statistics re-estimated on the training faces"
                if averaged.get("recompute_bn")
                else ""
            )
            + f"; validation {averaged['validation_given']:.4f} for the run's best "
            f"epoch -> {averaged['validation_averaged']:.4f} averaged "
            "(`python -m training average`)."
        )
    return "The epoch kept is the one with the best validation accuracy."


def _calibration_md(report: dict | None) -> str:
    """The card's calibration section (``python -m training calibrate``)."""
    if not report:
        return (
            "\n## Calibration\n\nNot calibrated (temperature 1): run "
            "`python -m training calibrate`.\n"
        )
    names = {"before": "raw", "temperature": "temperature alone", "after": "calibrated"}
    rows = "\n".join(
        f"| {split} | {names[when]} | {r['accuracy']:.4f} | {r['ece']:.4f} | "
        f"{r['nll']:.4f} |"
        for split in ("validation", "test")
        for when, r in ((w, report[split].get(w)) for w in names)
        if r
    )
    knots = report.get("confidence_map_knots", 0)
    stages = f"Temperature {report['temperature']:g}, fitted on validation (NLL)" + (
        f", then a monotone map of the top probability ({knots} knots, isotonic "
        "regression on validation)"
        if knots
        else ""
    )
    floors = ", ".join(
        f"{split} {report[split + '_ece_floor']:.4f}"
        for split in ("validation", "test")
        if split + "_ece_floor" in report
    )
    crossed = report.get("validation_cross_fitted")
    honest = (
        f" Fitted on one half of validation and scored on the other (both ways, five "
        f"halvings), the map's ECE is {crossed['ece']:.4f}, against a floor of "
        f"{crossed['ece_floor']:.4f} on that many images."
        if crossed
        else ""
    )
    floor_text = (
        f" A perfectly calibrated model would still show an ECE of about {floors} "
        "on these splits (the bins' sampling noise); the map is fitted on "
        "validation, so its ECE there flatters it." + honest
        if floors
        else ""
    )
    return f"""
## Calibration

{stages}; the analyzer and `evaluate` apply it. The most probable class is
unchanged. ECE is over {report["bins"]} equal-width bins of the top
probability.{floor_text}

| split | | accuracy | ECE | NLL |
|---|---|---:|---:|---:|
{rows}

![reliability diagram](reliability_diagram.png)
"""
