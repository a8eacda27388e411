"""Ray's two ways to keep loaded models on workers, on the same 8 clips.

The Ray engine uses an ``ActorPool`` of actors that each load the models once.
Ray Data's ``map_batches`` with a callable class does the same through a
dataset. This times both as engines of :func:`analyzer.batch.run` inside one
process, on one local Ray instance started once (so neither pays Ray's start-up),
alternating, ``--rounds`` times each, on the folder of ``benchmarks/ray_engine.py``.

    python -m benchmarks.ray_data [--rounds 2] [--scale 2]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import tempfile
import time
from pathlib import Path

from analyzer.batch import run
from analyzer.config import AnalyzerConfig
from analyzer.pipeline import analyze_source
from analyzer.ray_engine import ray_engine
from analyzer.runtime import Runtime

from .ray_engine import make_folder


def data_engine(workers: int):
    """An engine on Ray Data: map_batches with a callable class, one source a batch."""

    def engine(sources, todo, out, runtime, progress):
        import ray

        config = runtime.config

        class Analyze:
            def __init__(self) -> None:
                self.runtime = Runtime.create(config)

            def __call__(self, batch):
                rows = [
                    pickle.dumps(analyze_source(sources[int(i)], out, self.runtime))
                    for i in batch["index"]
                ]
                return {"index": batch["index"], "row": rows}

        ds = ray.data.from_items([{"index": i} for i in todo]).map_batches(
            Analyze, batch_size=1, concurrency=workers, num_cpus=1
        )
        for item in ds.iter_rows():
            yield int(item["index"]), pickle.loads(item["row"])

    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    runtime = Runtime.create(AnalyzerConfig())
    times = {"actor_pool": [], "ray_data": []}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        folder = make_folder(tmp / "clips", args.scale)
        for r in range(args.rounds):
            for name, engine in (
                ("actor_pool", ray_engine(workers=2)),
                ("ray_data", data_engine(2)),
            ):
                started = time.perf_counter()
                summary = run(
                    [folder], tmp / f"{name}{r}", runtime, progress=False, engine=engine
                )
                times[name].append(round(time.perf_counter() - started, 2))
                assert all(row.status == "ok" for row in summary.rows)
    ray.shutdown()
    result = {
        name: {"runs_s": t, "median_s": statistics.median(t)}
        for name, t in times.items()
    }
    result["ratio_data_to_pool"] = round(
        result["ray_data"]["median_s"] / result["actor_pool"]["median_s"], 2
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
