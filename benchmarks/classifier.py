"""Keras model against its LiteRT copy: load time, crops per second, largest difference.

Both runtimes run in one process on the same random crops.

    python -m benchmarks.classifier [--model MODEL.keras] [--n 1280]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from analyzer.classifier import DEFAULT_MODEL, EmotionClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--n", type=int, default=1280)
    args = parser.parse_args()
    EmotionClassifier(args.model, runtime="litert")  # make the cached copy first
    crops = np.random.default_rng(0).integers(0, 256, (args.n, 48, 48, 1), np.uint8)
    results = {}
    for runtime in ("keras", "litert"):
        started = time.perf_counter()
        classifier = EmotionClassifier(args.model, runtime=runtime)
        loaded = time.perf_counter() - started
        classifier.predict(crops[:64])  # warm-up
        started = time.perf_counter()
        results[runtime] = classifier.predict(crops)
        rate = args.n / (time.perf_counter() - started)
        print(f"{runtime:7s} load {loaded:5.2f} s  {rate:7.0f} crops/s")
    diff = np.abs(results["keras"] - results["litert"]).max()
    same = (results["keras"].argmax(1) == results["litert"].argmax(1)).mean()
    print(f"largest difference {diff:.2g}; same top emotion on {same:.2%} of crops")


if __name__ == "__main__":
    main()
