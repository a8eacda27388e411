"""``python -m analyzer INPUT [INPUT ...] --out OUT``: the batch job.

Exit codes: 0 every source succeeded (unsupported files are listed as skipped),
1 some sources failed (the others are written) or the disk filled up (the run
stopped; rerun to continue), 2 usage error (bad arguments, missing input, an
output folder that cannot be written or is in use, no model, a detector that
cannot run here), 130 / 143 interrupted by Ctrl-C / SIGTERM (rerun to continue).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from pathlib import Path

from .config import (
    DEFAULT_DETECT_INTERVAL_S,
    DEFAULT_MIN_EPISODE_S,
    DEFAULT_MIN_FACE,
    DEFAULT_REID_THRESHOLD,
    DEFAULT_SAMPLE_FPS,
    DEFAULT_SMOOTH_S,
    LINK_NEEDS_EMBEDDINGS,
)
from .litert import RUNTIMES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}
MAX_BATCH_SIZE = 4096  # crops per classifier call; more only costs memory


def build_parser() -> argparse.ArgumentParser:
    from .detectors import DETECTORS
    from .tracking import TRACKERS

    parser = argparse.ArgumentParser(
        prog="python -m analyzer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="image or video files, or folders walked recursively",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (faces/, frames/, sources.parquet, report/)",
    )
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument(
        "--sample-fps",
        type=float,
        default=DEFAULT_SAMPLE_FPS,
        metavar="F",
        help=f"video frames analyzed per second (default: {DEFAULT_SAMPLE_FPS:g})",
    )
    sampling.add_argument(
        "--every-frame", action="store_true", help="analyze every frame of every video"
    )
    parser.add_argument(
        "--detector",
        default="auto",
        choices=["auto", *DETECTORS.names()],
        help="face detector; auto: retinaface when its weights are "
        "on disk, else the embedded default (default: auto)",
    )
    parser.add_argument(
        "--tracker",
        default="iou",
        choices=TRACKERS.names(),
        help="face tracker for videos (default: iou)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a .keras emotion model (default: the shipped model)",
    )
    parser.add_argument(
        "--detect-interval",
        type=float,
        default=DEFAULT_DETECT_INTERVAL_S,
        metavar="S",
        help="seconds between full detections (new faces); analyzed frames in "
        "between carry the tracked faces by optical flow (see --refine); "
        "0 detects on every analyzed frame "
        f"(default: {DEFAULT_DETECT_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--detect-max-side",
        type=int,
        default=640,
        metavar="PX",
        help="downscale larger frames to this longer side for "
        "detection; 0 never (default: 640)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="face crops per classifier call (default: 64)",
    )
    parser.add_argument(
        "--classifier-runtime",
        default="auto",
        choices=RUNTIMES,
        help="run the Keras model itself, or its LiteRT copy (converted once, "
        "checked against the Keras model, cached); auto: LiteRT when installed",
    )
    parser.add_argument(
        "--no-box-flow",
        action="store_true",
        help="hold tracked boxes between keyframes instead of moving them with "
        "optical flow",
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="between keyframes, also re-place each moved box with MTCNN's last "
        "stage (O-Net) and drop faces it no longer finds (slower; docs/performance.md)",
    )
    parser.add_argument(
        "--no-box-check",
        action="store_true",
        help="keep carried boxes without checking with MTCNN's O-Net that they "
        "still hold a face",
    )
    parser.add_argument(
        "--min-face",
        type=int,
        default=DEFAULT_MIN_FACE,
        metavar="PX",
        help="leave out faces whose shorter side is under PX pixels, too small to "
        f"read reliably (default: {DEFAULT_MIN_FACE}; 0 keeps all)",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.0,
        metavar="P",
        help="leave out faces the detector scores under P (default: 0, the "
        "detector's own threshold only)",
    )
    parser.add_argument(
        "--smooth",
        type=float,
        default=DEFAULT_SMOOTH_S,
        metavar="HALF_LIFE_S",
        help="half-life in seconds of the smoother over each track's emotions, "
        f"which never crosses a shot cut (default: {DEFAULT_SMOOTH_S:g}; 0 turns "
        "it off: the *_smoothed columns equal the raw ones)",
    )
    parser.add_argument(
        "--min-episode",
        type=float,
        default=DEFAULT_MIN_EPISODE_S,
        metavar="S",
        help="shortest episode in seconds; shorter runs of one emotion merge into "
        f"their longer neighbour (default: {DEFAULT_MIN_EPISODE_S:g})",
    )
    parser.add_argument(
        "--detector-runtime",
        default="auto",
        choices=RUNTIMES,
        help="MTCNN on the mtcnn package (TensorFlow) or on LiteRT copies of its "
        "networks (converted once, checked, cached); auto: LiteRT when installed",
    )
    parser.add_argument(
        "--reid",
        default="auto",
        help="link each video's tracks into persons (the person column): dlib "
        "(the [reid] extra), none, or auto (dlib when installed)",
    )
    parser.add_argument(
        "--reid-threshold",
        type=float,
        default=DEFAULT_REID_THRESHOLD,
        metavar="D",
        help="tracks whose face embeddings are further apart than this are never "
        f"one person (default: {DEFAULT_REID_THRESHOLD:g})",
    )
    parser.add_argument(
        "--save-embeddings",
        action="store_true",
        help="also write each track's face vector to OUT/embeddings/ (biometric "
        "data: never written unless asked)",
    )
    parser.add_argument(
        "--link-across-sources",
        action="store_true",
        help="one person id across all the run's videos (a participant recorded "
        "in several files); needs --save-embeddings",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: one source after another here (default); ray: sources in "
        "parallel on Ray workers (the [ray] extra)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join this Ray cluster (as `ray start --address`); default: start a "
        "local Ray instance sized to this machine",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="Ray workers, each loading the models once (default: one per CPU)",
    )
    parser.add_argument(
        "--annotate",
        action="store_true",
        help="also write OUT/annotated/<source>.mp4 per video: every frame, faces "
        "boxed with track id, top emotion and probability (thick: analyzed frame; "
        "thin: box held from the last analyzed frame)",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not render the HTML report at the end",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    missing = [p for p in args.inputs if not p.exists()]
    if missing:
        print(
            f"error: input not found: {', '.join(map(str, missing))}", file=sys.stderr
        )
        return EXIT_USAGE
    if (
        not 1 <= args.batch_size <= MAX_BATCH_SIZE
        or not math.isfinite(args.sample_fps)
        or args.sample_fps <= 0
        or not math.isfinite(args.detect_interval)
        or args.detect_interval < 0
        or args.detect_max_side < 0
        or args.min_face < 0
        or not 0.0 <= args.min_score <= 1.0
        or not 0.0 <= args.smooth < math.inf
        or not 0.0 <= args.min_episode < math.inf
        or (args.workers is not None and args.workers < 1)
        or not args.reid_threshold > 0
        or (args.engine != "ray" and (args.workers or args.ray_address))
    ):
        print(
            f"error: --batch-size must be 1 to {MAX_BATCH_SIZE}, --sample-fps a "
            "positive number, --detect-interval, --detect-max-side and --min-face "
            "not negative, --min-score in [0, 1], --smooth and --min-episode 0 or "
            "more seconds, --workers at least 1; --workers and --ray-address go "
            "with --engine ray",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.link_across_sources and not args.save_embeddings:
        print(f"error: {LINK_NEEDS_EMBEDDINGS}", file=sys.stderr)
        return EXIT_USAGE
    from .outdir import OutputError, OutputLock, check_output

    try:
        check_output(args.out, args.inputs)
        with OutputLock(args.out), _signals_interrupt() as received:
            try:
                return _run(args)
            except KeyboardInterrupt:
                name = received[-1] if received else "SIGINT"  # Ctrl-C sets none
                print(
                    f"interrupted ({name}): finished sources are kept; rerun the "
                    "same command to continue",
                    file=sys.stderr,
                )
                return EXIT_INTERRUPTED[name]
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM (schedulers, ``timeout``) stops a run as Ctrl-C does: the source in
    progress is dropped with its temporary files, finished ones are kept."""
    import signal

    received: list[str] = []

    def interrupt(signum, frame):
        received.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    from tqdm import tqdm

    from .batch import run
    from .classifier import ModelUnavailable
    from .config import AnalyzerConfig
    from .detectors import DetectorUnavailable
    from .outdir import DiskFull, is_disk_full
    from .runtime import Runtime

    config = AnalyzerConfig(
        model=args.model,
        detector=args.detector,
        tracker=args.tracker,
        sample_fps=None if args.every_frame else args.sample_fps,
        batch_size=args.batch_size,
        detect_interval_s=args.detect_interval,
        detect_max_side=args.detect_max_side,
        classifier_runtime=args.classifier_runtime,
        detector_runtime=args.detector_runtime,
        box_flow=not args.no_box_flow,
        refine=args.refine,
        box_check=not args.no_box_check,
        min_face=args.min_face,
        min_score=args.min_score,
        smooth_s=args.smooth,
        min_episode_s=args.min_episode,
        reid=args.reid,
        reid_threshold=args.reid_threshold,
        save_embeddings=args.save_embeddings,
        link_across_sources=args.link_across_sources,
    )
    from emotion_contract.extras import MissingExtra

    try:
        runtime = Runtime.create(config)
    except (ModelUnavailable, DetectorUnavailable, KeyError, MissingExtra) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.save_embeddings and runtime.embedder is None:
        print(
            "error: --save-embeddings needs re-identification: --reid dlib (the "
            "[reid] extra), or auto with it installed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    detector = runtime.detector_name
    if runtime.detector_runtime:
        detector += f" [{runtime.detector_runtime}]"
    print(
        f"detector: {detector}; model: {runtime.classifier.name} "
        f"[{runtime.classifier.runtime}] "
        f"({runtime.classifier.path}); sampling: {config.sampling}",
        file=sys.stderr,
    )

    def warn(row) -> None:
        tqdm.write(f"warning: {row.source}: {row.error}", file=sys.stderr)

    engine_kwargs = {}
    if args.engine == "ray":
        from .ray_engine import ray_engine

        try:
            engine_kwargs["engine"] = ray_engine(args.ray_address, args.workers)
        except MissingExtra as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        engine_kwargs["engine_facts"] = {
            "engine": "ray",
            "ray_address": args.ray_address,
            "workers": args.workers,
        }
    if args.annotate:
        from .annotate import pick_encoder

        print(f"annotated videos: {pick_encoder()}", file=sys.stderr)
    try:
        summary = run(
            args.inputs,
            args.out,
            runtime,
            progress=not args.quiet,
            on_failure=warn,
            annotate=args.annotate,
            on_warning=lambda m: tqdm.write(f"warning: {m}", file=sys.stderr),
            **engine_kwargs,
        )
    except DiskFull as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print(
            f"error: the disk is full ({exc}); free some space and rerun the same "
            "command to continue",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if summary.reanalyzed:
        reasons = ", ".join(f"{why}: {n}" for why, n in summary.reanalyzed.items())
        print(
            f"analyzed again: {sum(summary.reanalyzed.values())} ({reasons})",
            file=sys.stderr,
        )
    if not args.no_report:
        try:
            _report(args.out)
        except OSError as exc:  # the data is complete; only the pages are not
            print(
                f"error: the report could not be written ({exc}); the Parquet "
                f"output is complete: rerun `python -m reports {args.out}` later",
                file=sys.stderr,
            )
            return EXIT_FAILED
    rows = summary.rows
    ok = sum(r.status == "ok" for r in rows)
    print(
        f"{len(rows)} files: {ok} ok ({summary.reused} already done), "
        f"{len(summary.failed)} failed, {len(rows) - ok - len(summary.failed)} "
        f"skipped; {sum(r.faces or 0 for r in rows)} faces -> {args.out}"
    )
    return EXIT_FAILED if summary.failed else EXIT_OK


def _report(out: Path) -> None:
    from reports import render

    path = render(out)
    print(f"report: {path}", file=sys.stderr)
