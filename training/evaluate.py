"""Accuracy, per-class precision/recall/F1 and the confusion matrix of a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_contract.labels import EMOTIONS

from .calibrate import ece, nll


def predict(model, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for ``(n, 48, 48) uint8`` faces, in batches."""
    x = images[..., None].astype("float32")
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """The evaluation report as plain JSON-ready values.

    Returns:
        ``accuracy``, ``macro_f1``, ``ece`` (15 bins), ``nll``, ``per_class``
        (label -> precision, recall, f1, support) and ``confusion_matrix``
        (rows: true class, in EMOTIONS order).
    """
    predicted = probs.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, len(EMOTIONS))
    tp = np.diag(matrix).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(tp / matrix.sum(axis=0))
        recall = np.nan_to_num(tp / matrix.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    per_class = {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(matrix[i].sum()),
        }
        for i, name in enumerate(EMOTIONS)
    }
    present = matrix.sum(axis=1) > 0
    return {
        "accuracy": round(float((predicted == labels).mean()), 4),
        "macro_f1": round(float(f1[present].mean()), 4),
        "ece": round(ece(labels, probs), 4),
        "nll": round(nll(labels, probs), 4),
        "n": int(len(labels)),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(EMOTIONS),
    }


def evaluate(
    model_path: Path,
    data_root: Path,
    split: str = "test",
    cache_dir: Path | None = None,
    ensemble: tuple[Path, ...] = (),
) -> dict:
    """Load a saved model and report its metrics on one split of a data set
    (``val``: the validation split training holds out), on its calibrated
    probabilities (the model file's temperature and confidence map applied).
    With ``ensemble``, on the mean of those models' and this one's probabilities."""
    from .data import load_named_split

    data = load_named_split(data_root, split, cache_dir)
    paths = (model_path, *ensemble)
    infos = [_info(path) for path in paths]
    probs = np.mean(
        [predict_file(p, data.images, i) for p, i in zip(paths, infos, strict=True)],
        axis=0,
    )
    report = metrics(data.labels, probs)
    report.update(
        split=split,
        model=str(model_path),
        data=str(data_root),
        temperature=infos[0].temperature,
        confidence_map=infos[0].confidence_map is not None,
    )
    if ensemble:  # ``temperature`` above is the first model's; each has its own
        report["ensemble"] = [str(path) for path in paths]
        report["temperatures"] = [info.temperature for info in infos]
    return report


def _info(model_path: Path):
    from emotion_contract.modelfile import read_info

    info = read_info(model_path)
    if tuple(info.class_names) != EMOTIONS:
        raise ValueError(f"{model_path} has classes {info.class_names}, not FER2013's")
    return info


def predict_file(model_path: Path, images: np.ndarray, info=None) -> np.ndarray:
    """A saved model's probabilities for ``images``: raw, or calibrated by
    ``info`` (its :class:`ModelInfo`) when given. The model is dropped after, so
    several can be run one after another in bounded memory."""
    import keras

    from emotion_contract.calibration import calibrate
    from emotion_contract.layers import load_keras_model

    probs = predict(load_keras_model(model_path), images)
    keras.backend.clear_session()
    return probs if info is None else calibrate(probs, info)
