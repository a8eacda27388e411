"""The Ray engine: the same per-source unit of work on a pool of Ray actors.

Each actor loads the detector and the classifier once (``Runtime.create``) and
analyzes whole sources with :func:`analyzer.pipeline.analyze_source`, writing each
source's part into OUT itself (temporary name, then rename), so OUT must be a
folder every node sees at the same path. The driver keeps what it did before:
finding sources, resuming, ``tracks.parquet``, ``sources.parquet``, ``run.json``
and the report. An actor whose process dies is restarted by Ray and its source
retried (``RETRIES`` times); a source still without a row after that is recorded
as ``failed`` with the reason, never half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from emotion_contract.extras import require

from .config import AnalyzerConfig
from .pipeline import analyze_source, source_row
from .records import SourceRow
from .runtime import Runtime
from .sources import Source

logger = logging.getLogger(__name__)

RETRIES = 2


class AnalyzerWorker:
    """A Ray actor: one loaded runtime, many sources."""

    def __init__(self, config: AnalyzerConfig, key: str) -> None:
        self.runtime = Runtime.create(config)
        if self.runtime.key != key:  # e.g. RetinaFace weights on this node only
            raise RuntimeError(
                "this node resolves the settings differently from the driver "
                f"(settings key {self.runtime.key} against {key}: "
                f"detector {self.runtime.detector_name}); install the same package "
                "and model files on every node"
            )

    def analyze(self, index: int, source: Source, out: str) -> tuple[int, SourceRow]:
        return index, analyze_source(source, Path(out), self.runtime)


def ray_engine(address: str | None = None, workers: int | None = None):
    """An engine for :func:`analyzer.batch.run` that runs on Ray.

    Without ``address`` Ray starts a local instance sized to the machine (or uses
    the one this process already started); with it, it joins that cluster.
    ``workers`` actors (default: one per CPU Ray reports) each take one CPU.

    Raises:
        MissingExtra: Ray is not installed (``pip install -e ".[ray]"``).
    """
    require("ray", "ray", "The Ray engine")

    def engine(
        sources: list[Source],
        todo: list[int],
        out: Path,
        runtime: Runtime,
        progress: bool,
    ) -> Iterator[tuple[int, SourceRow]]:
        if not todo:
            return
        import ray
        from ray.util import ActorPool

        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = min(n, len(todo))
        remote = ray.remote(num_cpus=1, max_restarts=RETRIES, max_task_retries=RETRIES)(
            AnalyzerWorker
        )
        actors = [remote.remote(runtime.config, runtime.key) for _ in range(n)]
        pool = ActorPool(actors)
        waiting = set(todo)
        last_error = None
        try:
            for index in todo:
                pool.submit(
                    lambda actor, i: actor.analyze.remote(i, sources[i], str(out)),
                    index,
                )
            while pool.has_next():
                try:
                    index, row = pool.get_next_unordered()
                except (
                    ray.exceptions.RayActorError,
                    ray.exceptions.RayTaskError,
                ) as exc:
                    cause = getattr(exc, "cause", None)
                    if cause is not None and type(cause).__name__ == "DiskFull":
                        raise cause from exc
                    last_error = exc
                    logger.warning("a Ray worker failed: %s", exc)
                    continue
                waiting.discard(index)
                yield index, row
            for index in sorted(waiting):  # their worker died for good
                yield (
                    index,
                    source_row(
                        sources[index],
                        status="failed",
                        error="the Ray worker analyzing it died "
                        f"({_short(last_error)}); "
                        "rerun the same command to try again",
                    ),
                )
        finally:
            for actor in actors:
                ray.kill(actor)
            if started_here:
                ray.shutdown()

    return engine


def _short(exc: BaseException | None) -> str:
    text = str(exc or "unknown cause").strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
