"""``python -m analyzer.ship``: rebuild the LiteRT copies shipped in the package.

Run it after replacing the shipped model or upgrading mtcnn (it needs the
``[train]`` extra); ``tests/test_shipped_copies.py`` fails until it has been run.
Each copy is checked against its Keras network before it is written.
"""

from __future__ import annotations

import argparse
import sys

from emotion_contract.layers import load_keras_model
from emotion_contract.modelfile import file_sha256
from emotion_contract.shipped import SHIPPED_MODEL

from . import litert
from .detectors import mtcnn


def ship_classifier() -> float:
    """The shipped model's copy, ``model.tflite`` beside it; returns the largest
    difference from Keras on the check batch."""
    return litert.write_copy(
        SHIPPED_MODEL.with_suffix(".tflite"),
        SHIPPED_MODEL,
        file_sha256(SHIPPED_MODEL),
        load_keras_model(SHIPPED_MODEL),
    )


def ship_mtcnn() -> dict[str, float]:
    """The copies of the installed mtcnn package's three networks."""
    out = {}
    for name in mtcnn.NETS:
        weights = mtcnn.package_weights(name)
        if weights is None:
            raise SystemExit("the mtcnn package is not installed (the [train] extra)")
        out[name] = litert.write_copy(
            mtcnn.BUNDLED / f"{name}.tflite",
            weights,
            mtcnn.source_digest(weights),
            mtcnn.package_net(name),
            **mtcnn.copy_settings(name),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analyzer.ship", description=__doc__
    )
    parser.add_argument(
        "--only", choices=["classifier", "mtcnn"], help="rebuild one kind only"
    )
    only = parser.parse_args(argv).only
    which = [only] if only else ["classifier", "mtcnn"]
    if "classifier" in which:
        print(f"classifier: max abs difference {ship_classifier():.2e}")
    if "mtcnn" in which:
        for name, diff in ship_mtcnn().items():
            print(f"mtcnn {name}: max abs difference {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
