"""Unit tests: registry, Faces, tracker, model metadata, classifier crops."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from analyzer.classifier import EmotionClassifier, ModelUnavailable, square_box
from analyzer.faces import Faces
from analyzer.registry import Registry
from analyzer.tracking import IouTracker, best_matching, iou_matrix
from emotion_contract.labels import EMOTIONS
from emotion_contract.modelfile import ModelFileError, ModelInfo, read_info, write_info

from ..helpers import CONSTANT_PROBS, constant_model


def test_registry_refuses_duplicates_and_lists_names():
    reg = Registry("widget")
    reg.register("a")(dict)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(list)
    with pytest.raises(KeyError, match="choose one of: a"):
        reg.create("b")


def test_faces_checks_shapes():
    with pytest.raises(ValueError, match="disagree"):
        Faces(np.zeros((2, 4)), np.zeros(3))
    assert len(Faces.empty()) == 0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
    ],
)
def test_iou(a, b, expected):
    assert iou_matrix(np.array([a], float), np.array([b], float))[
        0, 0
    ] == pytest.approx(expected)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (3, 3), (2, 6), (5, 2)])
def test_best_matching_maximises_total_iou(shape):
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        iou = rng.random(shape)
        rows, cols = best_matching(iou)
        want_rows, want_cols = linear_sum_assignment(-iou)
        assert iou[rows, cols].sum() == pytest.approx(iou[want_rows, want_cols].sum())
        assert len(set(rows)) == len(rows) == min(shape) == len(set(cols))


def _faces(*boxes):
    return Faces(np.array(boxes, dtype=float), np.ones(len(boxes)))


def test_tracker_keeps_ids_and_expires_lost_tracks():
    tracker = IouTracker(max_lost_s=1.0)
    first = tracker.update(_faces([0, 0, 10, 10], [50, 50, 60, 60]), 0.0)
    assert first.track_ids.tolist() == [0, 1]
    swapped = tracker.update(_faces([51, 50, 61, 60], [1, 0, 11, 10]), 0.2)
    assert swapped.track_ids.tolist() == [1, 0]
    tracker.update(Faces.empty(), 0.5)  # both unseen for a while
    back = tracker.update(_faces([1, 0, 11, 10]), 1.1)
    assert back.track_ids.tolist() == [0]
    later = tracker.update(_faces([51, 50, 61, 60]), 2.5)  # track 1 gone > 1 s
    assert later.track_ids.tolist() == [2]


def test_model_info_round_trip(tmp_path):
    path = constant_model(tmp_path / "m.keras")
    info = read_info(path)
    assert info.class_names == EMOTIONS and info.input_size == (48, 48)
    write_info(path, ModelInfo(class_names=EMOTIONS, input_size=(64, 64), name="x"))
    assert read_info(path).input_size == (64, 64)
    import keras

    assert keras.saving.load_model(path, compile=False).output_shape == (None, 7)


def test_model_info_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        read_info(tmp_path / "missing.keras")
    (tmp_path / "text.keras").write_text("hello")
    with pytest.raises(ModelFileError, match="not a .keras"):
        read_info(tmp_path / "text.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras", "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ModelFileError, match="python -m training"):
        read_info(tmp_path / "plain.keras")


def test_classifier_reorders_by_model_class_names(tmp_path):
    shuffled = tuple(reversed(EMOTIONS))
    classifier = EmotionClassifier(
        constant_model(tmp_path / "m.keras", class_names=shuffled)
    )
    probs = classifier.predict(np.zeros((3, 48, 48, 1), np.uint8))
    np.testing.assert_allclose(probs, np.tile(CONSTANT_PROBS, (3, 1)), atol=1e-5)


def test_classifier_refuses_other_classes(tmp_path):
    path = constant_model(tmp_path / "m.keras")
    write_info(path, ModelInfo(class_names=("a",) * 7, input_size=(48, 48)))
    with pytest.raises(ModelUnavailable, match="seven FER2013 classes"):
        EmotionClassifier(path)


def test_crop_is_square_with_margin_and_replicates_edges(tiny_model):
    classifier = EmotionClassifier(tiny_model)
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :100] = 255
    (crop,) = classifier.crops(frame, np.array([[80, 0, 120, 20]], float))  # top edge
    assert crop.shape == (48, 48, 1)
    assert crop[0, 0, 0] == 255 and crop[-1, -1, 0] == 0
    cx, cy, side = square_box(np.array([0, 0, 20, 10]), 0.1)
    assert (cx, cy) == (10, 5) and side == pytest.approx(24)


def test_litert_copy_matches_keras_and_is_cached(tmp_path):
    from analyzer import litert

    path = constant_model(tmp_path / "m.keras")
    fast = EmotionClassifier(path, runtime="litert", batch_size=4)
    slow = EmotionClassifier(path, runtime="keras")
    assert (fast.runtime, slow.runtime) == ("litert", "keras")
    crops = np.random.default_rng(0).integers(0, 255, (10, 48, 48, 1), dtype=np.uint8)
    np.testing.assert_allclose(fast.predict(crops), slow.predict(crops), atol=1e-5)
    copies = list(litert.cache_dir().glob(f"{fast.sha256[:24]}*"))
    assert sorted(p.suffix for p in copies) == [".json", ".tflite"]

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached copy was converted again")

    original, litert._convert = litert._convert, no_conversion
    try:
        again = EmotionClassifier(path, runtime="litert", batch_size=4)
    finally:
        litert._convert = original
    np.testing.assert_array_equal(again.predict(crops), fast.predict(crops))


def test_retinaface_without_weights_names_the_file(tmp_path, monkeypatch):
    from analyzer.detectors import DetectorUnavailable, resolve
    from analyzer.detectors.retinaface import RetinaFaceDetector, weights_path

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    expected = weights_path()
    assert expected.parent == tmp_path / ".deepface" / "weights"
    with pytest.raises(DetectorUnavailable, match=f"not found at {expected}"):
        RetinaFaceDetector()
    assert resolve("auto") == "mtcnn"
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"weights")  # present: auto picks retinaface
    assert resolve("auto") == "retinaface"


def test_runtime_pick_falls_back_only_for_auto(monkeypatch):
    from analyzer import litert

    def broken():
        raise litert.ConversionError("differs by 1")

    monkeypatch.setattr(litert, "available", lambda: True)
    assert litert.pick("auto", broken, lambda: "slow", unavailable=KeyError) == (
        "keras",
        "slow",
    )
    assert (
        litert.pick("auto", lambda: "fast", list, unavailable=KeyError)[0] == "litert"
    )
    assert (
        litert.pick("keras", broken, lambda: "slow", unavailable=KeyError)[0] == "keras"
    )
    with pytest.raises(KeyError, match="no LiteRT copy: differs by 1"):
        litert.pick("litert", broken, lambda: "slow", unavailable=KeyError)
    with pytest.raises(ValueError, match="unknown runtime"):
        litert.pick("onnx", broken, lambda: "slow", unavailable=KeyError)


def test_detector_runtime_reaches_only_backends_that_have_runtimes():
    from analyzer.detectors import create_detector

    assert create_detector("haar", runtime="keras").name == "haar"
    assert create_detector("mtcnn", runtime="keras").runtime == "keras"


def test_litert_remainders_go_through_a_small_interpreter_in_order(tmp_path):
    import keras

    from emotion_contract.modelfile import ModelInfo, write_info

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((48, 48, 1)),
            keras.layers.AveragePooling2D(8),
            keras.layers.Flatten(),
            keras.layers.Dense(7, activation="softmax"),
        ]
    )
    path = tmp_path / "varying.keras"
    model.save(path)
    write_info(path, ModelInfo(class_names=EMOTIONS, input_size=(48, 48)))
    fast = EmotionClassifier(path, runtime="litert", batch_size=16)
    slow = EmotionClassifier(path, runtime="keras")
    crops = np.random.default_rng(1).integers(0, 255, (37, 48, 48, 1), dtype=np.uint8)
    assert fast._model._small is None
    np.testing.assert_allclose(
        fast.predict(crops[:32]), slow.predict(crops[:32]), atol=1e-5
    )
    assert fast._model._small is None  # whole batches only
    for n in (37, 1, 8, 9):  # 2 batches + 5; 1; 8; 9 (padded to a full batch)
        got, want = fast.predict(crops[:n]), slow.predict(crops[:n])
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert fast._model._small.input_shape[0] == 8


@pytest.mark.parametrize(
    ("values", "type_name", "nan_is_null"),
    [
        (np.array([1, -2, 3], dtype=np.int64), "int64", False),
        (np.array([0.5, np.nan, 2.0]), "float64", True),
        (np.array([0.5, np.nan, 2.0]), "float64", False),
        (np.array([0.25, 1.5], dtype=np.float32), "float32", False),
        (np.array(["clip.mp4", "dir/é.mp4", ""], dtype=object), "string", False),
        ([None, 3, 7], "int64", False),
        ([1.5, None, float("nan")], "float64", False),
        (["ok", None, "failed"], "string", False),
        ([], "string", False),
    ],
)
def test_to_arrow_matches_pyarrow(values, type_name, nan_is_null):
    import pyarrow as pa

    from analyzer.records import to_arrow

    type_ = getattr(pa, type_name)()
    ours = to_arrow(values, type_, nan_is_null=nan_is_null)
    ours.validate(full=True)
    expected = pa.array(values, type=type_, from_pandas=nan_is_null)
    assert ours.type == expected.type and ours.null_count == expected.null_count
    for a, b in zip(ours.to_pylist(), expected.to_pylist(), strict=True):
        assert a == b or (a is None and b is None) or (a != a and b != b)  # NaN


def test_writing_results_does_not_import_pandas(tmp_path, tiny_model):
    import subprocess
    import sys

    from ..helpers import moving_blob_video

    # pyarrow's pa.array imports pandas (0.3 s); so do TensorFlow and Keras, which
    # a run with the LiteRT copy already cached and OpenCV's detector never loads.
    EmotionClassifier(tiny_model, runtime="litert")
    video = moving_blob_video(tmp_path / "clip.mp4", 10)
    args = [str(video), "--out", str(tmp_path / "out"), "--model", str(tiny_model)]
    args += ["--detector", "haar", "--classifier-runtime", "litert", "--no-report"]
    script = (
        "import sys\n"
        "from analyzer.cli import main\n"
        f"assert main({args!r} + ['-q']) == 0\n"
        "print('pandas' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_source_row_fields_are_the_schema_columns_in_order():
    import dataclasses

    from emotion_contract.schema import SOURCE_SCHEMA, SourceRow

    names = [f.name for f in dataclasses.fields(SourceRow)]
    assert names == SOURCE_SCHEMA.names
