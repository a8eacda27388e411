"""Calibration (temperature, then the confidence map): its measures, its fit, and
the model file carrying it to evaluate and the analyzer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotion_contract.calibration import calibrate, map_confidence, temper
from emotion_contract.modelfile import ModelFileError, ModelInfo, read_info, write_info
from training.calibrate import (
    cross_fitted_ece,
    ece,
    ece_floor,
    fit_confidence_map,
    fit_temperature,
    nll,
)
from training.cli import main

from .test_training import folder_data  # noqa: F401  (a fixture)


def _overconfident(n=4000, seed=0):
    """Labels and probabilities right 60% of the time but claiming ~99%."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    right = rng.random(n) < 0.6
    top = np.where(right, labels, (labels + rng.integers(1, 7, n)) % 7)
    logits = rng.normal(0, 1, (n, 7))
    logits[np.arange(n), top] += 6.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs.astype(np.float32)


def test_temper_keeps_the_top_class_and_one_is_the_identity():
    labels, probs = _overconfident(200)
    np.testing.assert_array_equal(temper(probs, 1.0), probs)
    for t in (0.5, 2.0, 7.0):
        tempered = temper(probs, t)
        np.testing.assert_array_equal(tempered.argmax(1), probs.argmax(1))
        np.testing.assert_allclose(tempered.sum(1), 1, atol=1e-5)
    assert temper(probs, 2.0).max(1).mean() < probs.max(1).mean()


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    labels, probs = _overconfident()
    assert ece(labels, probs) > 0.3
    # Each prediction's confidence equals the rate at which such predictions are right.
    n = 3000
    confidence = np.repeat([0.3, 0.6, 0.9], n // 3)
    right = np.concatenate([np.arange(n // 3) < c * (n // 3) for c in (0.3, 0.6, 0.9)])
    probs = np.full((n, 7), 0.0, np.float64)
    probs[:, 0] = confidence
    probs[:, 1:] = ((1 - confidence) / 6)[:, None]
    labels = np.where(right, 0, 1)
    assert ece(labels, probs) < 1e-9


def test_the_fitted_temperature_lowers_nll_and_ece():
    labels, probs = _overconfident()
    t = fit_temperature(labels, probs)
    assert t > 1.5
    calibrated = temper(probs, t)
    assert nll(labels, calibrated) < nll(labels, probs) - 0.5
    assert ece(labels, calibrated) < ece(labels, probs) / 3
    # ... and no other temperature does better.
    for other in (t * 0.8, t * 1.25):
        assert nll(labels, temper(probs, other)) > nll(labels, calibrated)


def _overconfident_model(path):
    """A model of mean brightness with large weights: sure of itself, often wrong."""
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((48, 48, 1)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(
                7,
                activation="softmax",
                kernel_initializer=keras.initializers.RandomNormal(0, 0.05),
            ),
        ]
    )
    model.save(path)
    write_info(path, ModelInfo(class_names=EMOTIONS_ORDER, input_size=(48, 48)))
    return path


EMOTIONS_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_calibrate_stores_the_temperature_that_evaluate_and_the_analyzer_apply(
    folder_data,  # noqa: F811
    tmp_path,
    capsys,
):
    from analyzer.classifier import EmotionClassifier

    model = _overconfident_model(tmp_path / "m.keras")
    cache = ["--cache", str(tmp_path / "cache")]
    data = ["--data", str(folder_data)]
    before = EmotionClassifier(model, runtime="keras")
    out = tmp_path / "calibrated" / "m.keras"
    args = ["calibrate", *data, "--model", str(model), "--out", str(out), *cache]
    assert main(args) == 0
    info = read_info(out)
    assert info.temperature != 1.0 and read_info(model).temperature == 1.0
    assert info.confidence_map is not None and len(info.confidence_map[0]) >= 2
    report = info.extra["calibration"]
    assert report["temperature"] == info.temperature
    val = report["validation"]
    assert val["after"]["nll"] < val["before"]["nll"]
    assert val["after"]["accuracy"] == val["before"]["accuracy"]
    assert (out.parent / "reliability_diagram.png").is_file()

    capsys.readouterr()
    assert main(["evaluate", *data, "--model", str(out), "--json", *cache]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["temperature"] == info.temperature
    assert evaluated["nll"] == pytest.approx(report["test"]["after"]["nll"], abs=1e-3)
    assert evaluated["ece"] == pytest.approx(report["test"]["after"]["ece"], abs=1e-3)

    crops = np.random.default_rng(0).integers(0, 255, (9, 48, 48, 1), dtype=np.uint8)
    for runtime in ("keras", "litert"):
        after = EmotionClassifier(out, runtime=runtime).predict(crops)
        expected = calibrate(before.predict(crops), info)
        np.testing.assert_allclose(after, expected, atol=1e-5)
        np.testing.assert_array_equal(after.argmax(1), expected.argmax(1))


def test_an_old_model_file_reads_as_uncalibrated(tmp_path):
    info = ModelInfo(class_names=EMOTIONS_ORDER, input_size=(48, 48))
    text = json.loads(info.to_json())
    del text["temperature"]
    assert ModelInfo.from_json(json.dumps(text)).temperature == 1.0


def _label_smoothed(n=6000, seed=0):
    """Overconfident at middling confidence, underconfident near the top: what a
    label-smoothed network gives, and what one temperature cannot mend."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.4, 0.95, n)
    accuracy = np.clip(0.85 + 1.4 * (confidence - 0.85), 0.2, 0.99)
    labels = rng.integers(0, 7, n)
    right = rng.random(n) < accuracy
    top = np.where(right, labels, (labels + rng.integers(1, 7, n)) % 7)
    probs = np.tile(((1 - confidence) / 6)[:, None], (1, 7))
    probs[np.arange(n), top] = confidence
    return labels, probs


def test_the_map_keeps_every_argmax_and_sums_to_one():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(7, 0.7), 5000)
    probs[:50, 1] = probs[:50, 0]  # exact ties
    probs[50:100] = 1 / 7  # all equal
    harsh = ((0.0, 1.0), (0.01, 0.02))  # pulls every top probability far down
    for knots in (harsh, ((0.0, 1.0), (0.9, 0.999)), ((0.2, 0.5), (0.3, 0.6))):
        mapped = map_confidence(probs, knots)
        np.testing.assert_array_equal(mapped.argmax(1), probs.argmax(1))
        np.testing.assert_allclose(mapped.sum(1), 1, atol=1e-5)
        assert (mapped >= 0).all()
    np.testing.assert_array_equal(map_confidence(probs, None), probs.astype(np.float32))


def test_the_map_mends_what_one_temperature_cannot_on_images_it_never_saw():
    labels, probs = _label_smoothed()
    fit, held = slice(0, 3000), slice(3000, None)
    t = fit_temperature(labels[fit], probs[fit])
    tempered = temper(probs, t)
    knots = fit_confidence_map(labels[fit], tempered[fit])
    only_t = ece(labels[held], tempered[held])
    mapped = ece(labels[held], map_confidence(tempered[held], knots))
    floor = ece_floor(tempered[held], 3000)
    assert only_t > 0.05  # the temperature alone leaves it miscalibrated
    assert mapped < floor + 0.01  # the map: within a point of the sampling noise
    assert nll(labels[held], map_confidence(tempered[held], knots)) < nll(
        labels[held], tempered[held]
    )
    assert cross_fitted_ece(labels, tempered) < floor + 0.01


def test_the_floor_is_what_a_calibrated_model_shows():
    rng = np.random.default_rng(2)
    n = 3000
    confidence = rng.uniform(0.3, 0.95, n)
    probs = np.tile(((1 - confidence) / 6)[:, None], (1, 7))
    probs[:, 0] = confidence
    labels = np.where(rng.random(n) < confidence, 0, 1)  # calibrated by design
    floor = ece_floor(probs, n)
    assert 0.005 < floor < 0.04
    assert ece(labels, probs) == pytest.approx(floor, abs=0.015)


def test_the_map_travels_in_the_model_metadata_and_bad_maps_are_refused():
    info = ModelInfo(
        class_names=EMOTIONS_ORDER,
        input_size=(48, 48),
        confidence_map=((0.2, 0.5, 0.9), (0.25, 0.45, 0.95)),
    )
    again = ModelInfo.from_json(info.to_json())
    assert again == info
    for bad in (((0.5, 0.2), (0.3, 0.4)), ((0.2, 0.5), (0.6, 0.4)), ((0.5,), (0.5,))):
        with pytest.raises(ModelFileError, match="confidence_map"):
            ModelInfo(
                class_names=EMOTIONS_ORDER, input_size=(48, 48), confidence_map=bad
            )
