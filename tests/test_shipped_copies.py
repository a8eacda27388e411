"""The LiteRT copies shipped in the package are what the analyzer runs by default:
each must be intact, made from the shipped source, and compute what it computes.
After replacing the model or upgrading mtcnn: ``python -m analyzer.ship``."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer import litert
from analyzer.detectors import mtcnn
from emotion_contract.modelfile import file_sha256
from emotion_contract.shipped import SHIPPED_MODEL

pytestmark = pytest.mark.skipif(not litert.available(), reason="LiteRT not installed")


def _check_batch(shape, low, high) -> np.ndarray:
    """Other inputs than the ones the copies were checked on when written."""
    return np.random.default_rng(7).uniform(low, high, shape).astype(np.float32)


@pytest.mark.slow
def test_the_classifier_copy_is_the_shipped_model():
    from emotion_contract.layers import load_keras_model

    copy = SHIPPED_MODEL.with_suffix(".tflite")
    assert litert.made_from(copy, file_sha256(SHIPPED_MODEL)), (
        "stale or damaged: run `python -m analyzer.ship`"
    )
    keras_model = load_keras_model(SHIPPED_MODEL)
    batch = _check_batch((24, *keras_model.input_shape[1:]), 0, 255)
    (got,) = litert.LiteRTNet(copy, batch.shape)(batch)
    expected = np.asarray(keras_model(batch, training=False))
    np.testing.assert_allclose(got, expected, atol=litert.MAX_ABS_DIFF)
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize("name", mtcnn.NETS)
def test_the_mtcnn_copies_are_the_package_networks(name):
    weights = mtcnn.package_weights(name)
    if weights is None:
        pytest.skip("the mtcnn package is not installed")
    copy = mtcnn.BUNDLED / f"{name}.tflite"
    assert litert.made_from(copy, mtcnn.source_digest(weights)), (
        "stale or damaged: run `python -m analyzer.ship --only mtcnn`"
    )
    settings = mtcnn.copy_settings(name)
    shape = (3, 41, 29, 3) if name == "pnet" else (5, *settings["input_shape"])
    batch = _check_batch(shape, -1, 1)
    got = litert.LiteRTNet(copy, batch.shape)(batch)
    expected = [np.asarray(o) for o in mtcnn.package_net(name)(batch, training=False)]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, atol=litert.MAX_ABS_DIFF)


def test_a_copy_from_another_source_or_damaged_is_not_taken(tmp_path):
    shipped = mtcnn.BUNDLED / "pnet.tflite"
    digest = litert._read_record(shipped)["source_sha256"]
    assert litert.made_from(shipped, digest) and litert.made_from(shipped, None)
    assert not litert.made_from(shipped, "0" * 64)
    damaged = tmp_path / "pnet.tflite"
    damaged.write_bytes(shipped.read_bytes()[:-1])
    (tmp_path / "pnet.tflite.json").write_bytes(
        (mtcnn.BUNDLED / "pnet.tflite.json").read_bytes()
    )
    assert not litert.made_from(damaged, digest)
