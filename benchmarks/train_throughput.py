"""Training throughput on this machine: TensorFlow, TensorFlow with XLA, and JAX.

Each backend runs in its own process (Keras picks its backend at import): the
training recipe's model (64 px, batch 64, its augmentation) is compiled as
``training.train`` compiles it, fitted for a few warm-up steps, then timed over
``--steps`` more on real FER2013 training faces. Prints images per second and
the ratio to plain TensorFlow.

    python -m benchmarks.train_throughput --data ../shared/data/fer2013
        [--recipe cpu-64-erase] [--steps 40]

Stop anything else using the cores while it runs: the ratios are only fair when
every backend sees the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {
    "tensorflow": {"KERAS_BACKEND": "tensorflow", "jit": "false"},
    "tensorflow + XLA": {"KERAS_BACKEND": "tensorflow", "jit": "true"},
    "jax": {"KERAS_BACKEND": "jax", "jit": "auto"},
}


def measure(data: Path, recipe_name: str, steps: int, jit: str) -> dict:
    """Runs in the child process: images per second of ``fit`` steps."""
    import keras
    import numpy as np

    from training.data import load_cached, stratified_split
    from training.model import build_model
    from training.recipes import RECIPES
    from training.train import _optimizer

    recipe = RECIPES[recipe_name]
    batch = recipe.batch_size
    train, _ = stratified_split(load_cached(data, "train", Path(".cache")))
    n = batch * (steps + 5)
    x = train.images[:n, ..., None].astype("float32")
    y = np.eye(7, dtype="float32")[train.labels[:n]]
    model = build_model(recipe)
    phase = recipe.phases[-1]
    jit_compile = {"true": True, "false": False}.get(jit, "auto")
    model.compile(
        optimizer=_optimizer(phase, steps + 5),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    warm = batch * 5
    model.fit(x[:warm], y[:warm], batch_size=batch, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(x[warm:], y[warm:], batch_size=batch, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return {
        "backend": keras.backend.backend(),
        "jit_compile": str(jit_compile),
        "images": len(x) - warm,
        "seconds": round(seconds, 2),
        "images_per_s": round((len(x) - warm) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--recipe", default="cpu-64-erase")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.data, args.recipe, args.steps, args.child)))
        return
    results = {}
    for name, variant in VARIANTS.items():
        env = os.environ | {"KERAS_BACKEND": variant["KERAS_BACKEND"]}
        cmd = [sys.executable, "-m", "benchmarks.train_throughput", "--data"]
        cmd += [str(args.data), "--recipe", args.recipe, "--steps", str(args.steps)]
        done = subprocess.run(
            [*cmd, "--child", variant["jit"]], env=env, capture_output=True, text=True
        )
        if done.returncode:
            results[name] = {"error": done.stderr.strip().splitlines()[-1]}
        else:
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, json.dumps(results[name]), flush=True)
    base = results["tensorflow"].get("images_per_s")
    print(f"{'backend':20s} {'img/s':>8s} {'vs tensorflow':>14s}")
    for name, r in results.items():
        rate = r.get("images_per_s")
        ratio = f"{rate / base:14.2f}" if rate and base else f"{'-':>14s}"
        print(f"{name:20s} {rate or '-':>8} {ratio}")


if __name__ == "__main__":
    main()
