"""Training package: loaders, split, one training step, metadata, evaluate's JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from emotion_contract.labels import EMOTIONS
from emotion_contract.modelfile import read_info
from training.cli import main
from training.data import DataError, FerSplit, load_split, stratified_split
from training.recipes import CPU, RECIPES

from ..helpers import CONSTANT_PROBS, constant_model, write_image

FOLDER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def _face(label: int) -> np.ndarray:
    """A 48x48 image whose brightness encodes its label, to check the mapping."""
    return np.full((48, 48, 3), 30 * label + 10, np.uint8)


@pytest.fixture
def folder_data(tmp_path):
    root = tmp_path / "fer"
    for split, n in (("train", 6), ("test", 2)):
        for name in reversed(FOLDER_CLASSES):  # creation order must not matter
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                write_image(
                    root / split / name / f"{i}.png", _face(EMOTIONS.index(name))
                )
    return root


@pytest.fixture
def csv_data(tmp_path):
    path = tmp_path / "fer2013.csv"
    lines = ["emotion,pixels,Usage"]
    for label in range(7):
        pixels = " ".join([str(30 * label + 10)] * 48 * 48)
        lines += [f"{label},{pixels},Training"] * 3 + [f"{label},{pixels},PublicTest"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_folder_layout_maps_classes_in_fer_order(folder_data):
    split = load_split(folder_data, "train")
    assert len(split) == 42 and split.images.shape[1:] == (48, 48)
    for label in range(7):
        assert np.all(split.images[split.labels == label] == 30 * label + 10)


def test_csv_layout(csv_data):
    train, test = load_split(csv_data, "train"), load_split(csv_data, "test")
    assert len(train) == 21 and len(test) == 7
    assert np.all(train.images[train.labels == 3] == 100)


def test_missing_class_folder_is_allowed(folder_data):
    import shutil

    shutil.rmtree(folder_data / "train" / "neutral")
    split = load_split(folder_data, "train")
    assert split.class_counts()[EMOTIONS.index("neutral")] == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda r: (r / "train" / "contempt").mkdir(),
            "unknown class folder .*contempt",
        ),
        (
            lambda r: (r / "train" / "sad" / "bad.jpg").write_bytes(b"xx"),
            "cannot decode image .*bad.jpg",
        ),
    ],
)
def test_loader_errors_name_the_culprit(folder_data, make, message):
    make(folder_data)
    with pytest.raises(DataError, match=message):
        load_split(folder_data, "train")


def test_empty_or_missing_split(tmp_path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_split(tmp_path, "train")
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path, "test")


def test_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    with pytest.raises(DataError, match="bad.csv:2"):
        load_split(bad, "train")


def test_stratified_split_is_reproducible_and_proportional():
    labels = np.repeat(np.arange(7), [50, 5, 50, 90, 60, 40, 60])
    data = FerSplit(np.zeros((len(labels), 48, 48), np.uint8), labels)
    train, val = stratified_split(data, val_fraction=0.2, seed=1)
    assert len(train) + len(val) == len(data)
    assert val.class_counts().tolist() == [10, 1, 10, 18, 12, 8, 12]
    again = stratified_split(data, val_fraction=0.2, seed=1)[1]
    assert np.array_equal(again.labels, val.labels)


def test_paper_phases_train_what_the_seed_report_trained():
    """Head phase: only the new softmax head learns; fine-tuning: every base layer
    after the first 200 learns too."""
    from dataclasses import replace

    from training.model import BASE_NAME, build_model, set_trainable

    paper = RECIPES["paper"]
    model = build_model(replace(paper, weights=None, image_size=64))
    base = model.get_layer(BASE_NAME)
    head, tune = paper.phases
    set_trainable(model, head.trainable)
    assert [w.path.split("/")[0] for w in model.trainable_weights] == ["emotion"] * 2
    set_trainable(model, tune.trainable)
    learning = [i for i, layer in enumerate(base.layers) if layer.trainable]
    assert learning == list(range(200, len(base.layers)))
    assert (head.learning_rate, tune.learning_rate, paper.dropout) == (1e-3, 1e-5, 0.5)


def test_zero_init_makes_residual_blocks_identities():
    from training.model import build_model

    model = build_model(replace(CPU, image_size=32))
    base = model.get_layer("efficientnetb1")
    gammas = {
        layer.name: np.asarray(layer.gamma)
        for layer in base.layers
        if layer.name.endswith("_project_bn")
    }
    assert np.all(gammas["block1a_project_bn"] == 1)  # no residual add: untouched
    assert np.all(gammas["block2b_project_bn"] == 0)


@pytest.mark.slow
def test_train_one_step_save_load_and_evaluate_json(folder_data, tmp_path, capsys):
    out = tmp_path / "run"
    teacher = constant_model(tmp_path / "teacher.keras")
    tiny = replace(CPU, image_size=32, batch_size=8).with_epochs(1)
    RECIPES["tiny-test"] = replace(tiny, name="tiny-test")
    try:
        code = main(
            [
                "train",
                "--data",
                str(folder_data),
                "--out",
                str(out),
                "--recipe",
                "tiny-test",
                "--cache",
                str(tmp_path / "cache"),
                "--snapshots",
                "--seed",
                "7",  # another run seed: the validation split stays the same
                "--teacher",
                str(teacher),
                "--teacher",
                str(teacher),
                "--distill-weight",
                "0.3",
            ]
        )
    finally:
        del RECIPES["tiny-test"]
    assert code == 0
    # Two teachers that always say CONSTANT_PROBS average to it, for every face.
    with np.load(out / "teacher_probs.npz") as stored:
        assert stored["probs"].shape == (35, 7)  # 42 faces less validation
        np.testing.assert_allclose(stored["probs"], [CONSTANT_PROBS] * 35, atol=1e-6)
    assert len(list((out / "checkpoints").glob("*/epochs/epoch-01.weights.h5"))) == 1
    info = read_info(out / "model.keras")
    assert info.class_names == EMOTIONS and info.input_size == (48, 48)
    assert info.extra["recipe"]["image_size"] == 32
    assert (out / "confusion_matrix.png").exists()
    assert "- Augmentation: horizontal flip" in (out / "model_card.md").read_text()
    assert "epoch_time_s" in (out / "training_log.csv").read_text().splitlines()[0]
    card = json.loads((out / "model_card.json").read_text())
    assert set(card["results"]) == {"validation", "test"}
    assert card["teachers"] == [str(teacher)] * 2 and card["distill_weight"] == 0.3
    # The constant teachers always say "happy": right on 5 of the 35 training faces.
    assert card["teacher_train_accuracy"] == round(5 / 35, 4)
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(folder_data),
                "--model",
                str(out / "model.keras"),
                "--json",
                "--cache",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 14 and 0 <= report["accuracy"] <= 1
    # The card measured the fixed validation split, whatever --seed was.
    from emotion_contract.layers import load_keras_model
    from training.data import load_validation
    from training.evaluate import metrics, predict

    val = load_validation(folder_data, tmp_path / "cache")
    model = load_keras_model(out / "model.keras")
    again = metrics(val.labels, predict(model, val.images))
    validation = card["results"]["validation"]
    assert again["confusion_matrix"] == validation["confusion_matrix"]
    # An ensemble is scored on the mean of its models' probabilities.
    capsys.readouterr()
    argv = ["evaluate", "--data", str(folder_data), "--split", "val", "--json"]
    argv += ["--model", str(out / "model.keras"), "--ensemble", str(teacher)]
    assert main([*argv, "--cache", str(tmp_path / "cache")]) == 0
    both = json.loads(capsys.readouterr().out)
    mean = (predict(model, val.images) + CONSTANT_PROBS) / 2
    assert both["n"] == len(val) and len(both["ensemble"]) == 2
    assert both["temperatures"] == [1.0, 1.0]  # neither model calibrated
    assert both["nll"] == metrics(val.labels, mean)["nll"]
    assert set(report["per_class"]) == set(EMOTIONS)
    assert np.array(report["confusion_matrix"]).sum() == 14


def test_distill_targets_mix_labels_and_teachers():
    from training.train import distill_targets

    teacher = np.array([CONSTANT_PROBS, CONSTANT_PROBS], dtype="float32")
    onehot = np.eye(7, dtype="float32")
    targets = distill_targets(onehot[[0, 3]], teacher, 0.25)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(targets[0], 0.25 * CONSTANT_PROBS + 0.75 * np.eye(7)[0])
    np.testing.assert_allclose(
        distill_targets(onehot[[5]], teacher[:1], 0.0)[0], np.eye(7)[5]
    )


def test_sgd_plateau_halves_the_rate_when_validation_stalls(tmp_path):
    """The cpu-64-sgd phase: SGD with Nesterov momentum, and the rate cut (and
    logged to the CSV) each time validation accuracy fails to improve."""
    import keras

    from training.train import TrainConfig, _callbacks, _optimizer

    phase = RECIPES["cpu-64-sgd"].phases[0]
    optimizer = _optimizer(phase, steps_per_epoch=1)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.nesterov
    assert optimizer.momentum == 0.9
    # Every face is class 0: after the first step validation is 1.0 and stays so.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(7, "softmax")])
    model.compile(
        optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"]
    )
    x, y = np.zeros((8, 3), "float32"), np.eye(7, dtype="float32")[[0] * 8]
    config = TrainConfig(data=tmp_path, out=tmp_path, recipe=RECIPES["cpu-64-sgd"])
    model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=4,
        verbose=0,
        callbacks=_callbacks(config, tmp_path / "phase", phase),
    )
    lines = (tmp_path / "training_log.csv").read_text().splitlines()
    column = lines[0].split(",").index("learning_rate")
    rates = [float(line.split(",")[column]) for line in lines[1:]]
    lr = phase.learning_rate
    np.testing.assert_allclose(rates, [lr, lr, lr / 2, lr / 4], rtol=1e-6)


def test_a_resumed_phase_keeps_its_best_epoch_and_its_patience(tmp_path):
    """Interrupted after three epochs and rerun: the best epoch's checkpoint from
    before the interruption survives a worse epoch after it, and the plateau
    schedule cuts the rate as if the phase had never stopped."""
    import keras

    from training.resume import replay
    from training.train import TrainConfig, _callbacks, _optimizer

    phase = RECIPES["cpu-64-sgd"].phases[0]
    config = TrainConfig(data=tmp_path, out=tmp_path, recipe=RECIPES["cpu-64-sgd"])
    scripted = [0.5, 0.6, 0.55, 0.58, 0.57]  # validation accuracy, epoch by epoch

    class Script(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_accuracy"] = scripted[epoch]

    class Stop(Exception):
        pass

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise Stop

    x, y = np.zeros((8, 3), "float32"), np.eye(7, dtype="float32")[[0] * 8]

    def fit(extra):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(7, "softmax")])
        model.compile(optimizer=_optimizer(phase, 1), loss="categorical_crossentropy")
        callbacks = [Script(), *_callbacks(config, tmp_path / "phase", phase), *extra]
        model.fit(
            x, y, validation_data=(x, y), epochs=5, verbose=0, callbacks=callbacks
        )

    with pytest.raises(Stop):
        fit([Interrupt()])
    best = tmp_path / "phase" / "best.keras"
    saved = best.stat().st_mtime_ns
    fit([])
    assert best.stat().st_mtime_ns == saved  # epoch 3's 0.58 is under epoch 1's 0.6
    lines = (tmp_path / "training_log.csv").read_text().splitlines()
    column = lines[0].split(",").index("learning_rate")
    rates = [float(line.split(",")[column]) for line in lines[1:]]
    lr = phase.learning_rate
    # Cut after epochs 2 (before the interruption), 3 and 4; fresh counters
    # would have taken 0.58 for an improvement and kept lr / 2 at epoch 4.
    np.testing.assert_allclose(rates, [lr, lr, lr, lr / 2, lr / 4], rtol=1e-6)

    early = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max")
    early.on_train_begin()
    replay([early], {0: 0.5, 1: 0.6, 2: 0.55})
    assert (early.best, early.best_epoch, early.wait) == (0.6, 1, 1)


def test_init_copies_weights_from_a_saved_model(tmp_path):
    from training.model import build_model
    from training.train import _load_init

    recipe = replace(CPU, image_size=32)
    source = build_model(recipe)
    source.get_layer("emotion").bias.assign(np.arange(7, dtype="float32"))
    source.save(tmp_path / "source.keras")
    target = build_model(recipe)
    _load_init(target, tmp_path / "source.keras")
    np.testing.assert_array_equal(target.get_layer("emotion").bias, np.arange(7))


def _tiny_model_and_faces():
    """A small input-dependent 7-way model and four random 48x48 faces."""
    import keras

    keras.utils.set_random_seed(0)
    plain = keras.Sequential(
        [
            keras.Input((48, 48, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(7, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    return plain, x


def test_flip_average_matches_mean_of_mirrors_and_survives_save(tmp_path):

    from analyzer.classifier import EmotionClassifier
    from emotion_contract.layers import load_keras_model
    from emotion_contract.modelfile import ModelInfo, write_info
    from training.flip_average import flip_averaged

    plain, x = _tiny_model_and_faces()
    expected = (plain.predict_on_batch(x) + plain.predict_on_batch(x[:, :, ::-1])) / 2
    averaged = flip_averaged(plain)
    np.testing.assert_allclose(averaged.predict_on_batch(x), expected, atol=1e-6)
    averaged.save(tmp_path / "avg.keras")
    write_info(
        tmp_path / "avg.keras", ModelInfo(class_names=EMOTIONS, input_size=(48, 48))
    )
    loaded = load_keras_model(tmp_path / "avg.keras")
    np.testing.assert_allclose(loaded.predict_on_batch(x), expected, atol=1e-6)
    fast = EmotionClassifier(tmp_path / "avg.keras", runtime="litert")
    np.testing.assert_allclose(
        fast.predict(x.astype(np.uint8)),
        EmotionClassifier(tmp_path / "avg.keras", runtime="keras").predict(
            x.astype(np.uint8)
        ),
        atol=1e-5,
    )


def test_failed_imagenet_download_says_where_to_put_the_file(monkeypatch):
    import keras

    from training.model import WeightsUnavailable, build_model

    def offline(**kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.applications, "EfficientNetB1", offline)
    with pytest.raises(
        WeightsUnavailable, match="efficientnetb1_notop.h5 at .*--weights none"
    ):
        build_model(RECIPES["paper"])


def test_weight_average_is_the_mean_of_the_snapshots(tmp_path):
    from training.average import averaged_weights
    from training.model import build_model

    model = build_model(replace(CPU, image_size=32))
    bias = model.get_layer("emotion").bias
    paths = []
    for i, value in enumerate((1.0, 2.0, 6.0)):
        bias.assign(np.full(7, value, dtype="float32"))
        paths.append(tmp_path / f"epoch-{i}.weights.h5")
        model.save_weights(paths[-1])
    index = [w.path for w in model.weights].index(bias.path)
    mean = averaged_weights(model, paths)
    np.testing.assert_allclose(mean[index], np.full(7, 3.0))
    assert len(mean) == len(model.get_weights())


def test_stability_model_shares_weights_and_adds_a_jitter_loss_in_training():
    import keras

    from training.model import build_model, stability_model
    from training.recipes import RECIPES

    keras.utils.set_random_seed(0)
    recipe = replace(RECIPES["cpu-64-stable"], image_size=32, zero_init_residual=False)
    model = build_model(recipe)
    fitted = stability_model(model, recipe)
    assert {id(w) for w in fitted.weights} == {id(w) for w in model.weights}
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(
        fitted(x, training=False), model(x, training=False), atol=1e-6
    )
    assert float(keras.ops.sum(fitted.losses)) == 0.0  # no jitter outside training
    fitted(x, training=True)
    assert len(fitted.losses) == 1 and float(fitted.losses[0]) > 0


def test_shift_zoom_moves_whole_pixels_exactly_and_rows_sum_to_one():
    from emotion_contract.layers import ShiftZoom, resample_matrix

    img = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype("float32")
    right = np.asarray(ShiftZoom(dx=1 / 48)(img))
    np.testing.assert_allclose(right[:, :, :-1], img[:, :, 1:], atol=1e-4)
    np.testing.assert_allclose(right[:, :, -1], img[:, :, -1], atol=1e-4)  # edge
    up = np.asarray(ShiftZoom(dy=-2 / 48)(img))
    np.testing.assert_allclose(up[:, 2:], img[:, :-2], atol=1e-4)
    np.testing.assert_allclose(resample_matrix(48, 0.03, 0.05).sum(1), 1, atol=1e-6)


def test_shifted_flip_average_averages_two_opposite_windows(tmp_path):

    from analyzer.classifier import EmotionClassifier
    from emotion_contract.layers import resample_matrix
    from emotion_contract.modelfile import ModelInfo, write_info
    from training.flip_average import flip_averaged

    plain, x = _tiny_model_and_faces()

    def window(shift, zoom):
        rows, cols = (resample_matrix(48, shift, zoom),) * 2
        return np.einsum("ij,bjkc,lk->bilc", rows, x, cols)

    a, b = window(0.03, 0.05), window(-0.03, -0.05)[:, :, ::-1]
    expected = (plain.predict_on_batch(a) + plain.predict_on_batch(b)) / 2
    averaged = flip_averaged(plain, shift=0.03, zoom=0.05)
    np.testing.assert_allclose(averaged.predict_on_batch(x), expected, atol=1e-5)
    assert not np.allclose(expected, flip_averaged(plain).predict_on_batch(x))
    averaged.save(tmp_path / "avg.keras")
    write_info(
        tmp_path / "avg.keras", ModelInfo(class_names=EMOTIONS, input_size=(48, 48))
    )
    fast = EmotionClassifier(tmp_path / "avg.keras", runtime="litert")
    slow = EmotionClassifier(tmp_path / "avg.keras", runtime="keras")
    crops = x.astype(np.uint8)
    np.testing.assert_allclose(fast.predict(crops), slow.predict(crops), atol=1e-5)


def test_recompute_batchnorm_moves_the_base_statistics():
    import keras

    from training.average import recompute_batchnorm
    from training.model import build_model

    model = build_model(replace(CPU, image_size=32))
    base = model.get_layer("efficientnetb1")
    bn = [
        layer
        for layer in base.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    before = [np.array(layer.moving_mean) for layer in bn]
    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    assert recompute_batchnorm(model, faces, batch_size=8) == 2
    after = [np.array(layer.moving_mean) for layer in bn]
    assert all(np.abs(a - b).max() > 0 for a, b in zip(after, before, strict=True))


def test_mixup_blends_faces_targets_and_weights_alike():
    """Faces whose brightness encodes their label: after mixup each face's
    brightness, target and weight are the same blend of two faces."""
    from training.batches import FixedBatches

    labels = np.arange(64) % 7
    x = (10.0 * labels).reshape(-1, 1, 1, 1) * np.ones((1, 4, 4, 1), "float32")
    y = np.eye(7, dtype="float32")[labels]
    class_weight = np.linspace(0.5, 2.0, 7).astype("float32")
    batches = FixedBatches(x, y, class_weight[labels], 16, seed=0, mixup_alpha=0.2)
    assert len(batches) == 4
    seen = 0
    for i in range(len(batches)):
        xb, yb, wb = batches[i]
        np.testing.assert_allclose(yb.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(
            xb[:, 0, 0, 0], yb @ (10.0 * np.arange(7)), rtol=1e-5
        )
        np.testing.assert_allclose(xb.std(axis=(1, 2, 3)), 0.0, atol=1e-4)
        np.testing.assert_allclose(wb, yb @ class_weight, rtol=1e-5)
        seen += int((yb.max(axis=1) < 0.99).sum())
    assert seen > 0  # some faces really are blends
    plain = FixedBatches(x, y, class_weight[labels], 16, seed=0)
    xb, yb, _ = plain[0]
    assert set(yb.max(axis=1)) == {1.0}


def test_stochastic_depth_scales_every_block_drop_rate():
    import keras

    from training.model import build_model

    def drop_layers(recipe):
        base = build_model(recipe).get_layer("efficientnetb1")
        return [layer for layer in base.layers if layer.name.endswith("_drop")]

    small = replace(CPU, image_size=32)
    default = drop_layers(small)
    doubled = drop_layers(replace(small, stochastic_depth=0.4))
    assert len(default) == len(doubled) == 16
    assert max(layer.rate for layer in default) < 0.2
    np.testing.assert_allclose(
        [layer.rate for layer in doubled], [2 * layer.rate for layer in default]
    )
    # The changed rate is the one the layer applies while training.
    last = doubled[-1]
    last.rate = 0.9
    dropped = keras.ops.convert_to_numpy(last(np.ones((400, 2, 2, 3)), training=True))
    assert 0.8 < (dropped == 0).all(axis=(1, 2, 3)).mean() < 0.97


def test_curves_summarize_each_run_and_draw_them(tmp_path, capsys):
    from training.cli import main

    for name, vals in (("a", [0.5, 0.62, 0.6]), ("b", [0.61, 0.6])):
        (tmp_path / name).mkdir()
        rows = [
            f"{i},{v + 0.05},{100 + i},{v}" for i, v in enumerate(vals)
        ]  # epoch,accuracy,epoch_time_s,val_accuracy
        (tmp_path / name / "training_log.csv").write_text(
            "epoch,accuracy,epoch_time_s,val_accuracy\n" + "\n".join(rows) + "\n"
        )
    out = tmp_path / "curves.png"
    args = ["curves", "--run", f"A={tmp_path / 'a'}", "--run", f"B={tmp_path / 'b'}"]
    assert main([*args, "--out", str(out), "--chain"]) == 0
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [
        (s["label"], s["best_epoch"], s["best_val_accuracy"]) for s in summaries
    ] == [
        ("A", 2, 0.62),
        ("B", 1, 0.61),
    ]
    assert summaries[0]["mean_epoch_s"] == 101.0
    assert out.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit):
        main(["curves", "--run", "no-label", "--out", str(out)])


def test_the_80_px_cycle_differs_from_the_64_px_one_in_size_only():
    """cpu-80-depth is cpu-64-depth at 80 px: a comparison of input size alone."""
    wide, base = RECIPES["cpu-80-depth"], RECIPES["cpu-64-depth"]
    assert wide.image_size == 80 and base.image_size == 64
    same = replace(
        wide,
        name=base.name,
        image_size=64,
        notes=base.notes,
        phases=(replace(wide.phases[0], name=base.phases[0].name),),
    )
    assert same == base
