"""``python -m training``: train and evaluate the emotion model.

Exit codes: 0 success, 1 a failure while running (bad data, missing weights),
2 a usage error (or TensorFlow not installed: the ``[train]`` extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from emotion_contract.shipped import SHIPPED_MODEL as DEFAULT_MODEL

from .recipes import RECIPES


def _add_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(".cache"),
        help="where decoded data are cached (default: .cache)",
    )


def _add_model_data_cache(parser: argparse.ArgumentParser) -> None:
    """The arguments of every command that reads a saved model and a data set."""
    parser.add_argument("--data", type=Path, required=True, help="FER2013 root or CSV")
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help="model file (default: the shipped model)",
    )
    _add_cache(parser)


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on FER2013")
    train.add_argument(
        "--data",
        type=Path,
        required=True,
        help="FER2013 root (train/ and test/ folders) or fer2013.csv",
    )
    train.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for model.keras, its card, plots and the CSV log",
    )
    train.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="cpu",
        help="training recipe (default: cpu; see docs/model.md)",
    )
    train.add_argument(
        "--weights",
        default=None,
        help="'imagenet', 'none' or a weights file for the base; default: the recipe's",
    )
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of the recipe's last phase (default: the recipe's)",
    )
    train.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this .keras model's weights (warm restart)",
    )
    train.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="checkpoint folder, outside git (default: OUT/checkpoints); "
        "rerun the same command to resume",
    )
    train.add_argument(
        "--snapshots",
        action="store_true",
        help="also keep every epoch's weights in CHECKPOINTS/PHASE/epochs/ "
        "(about 80 MB each) for `python -m training average`",
    )
    train.add_argument(
        "--no-xla",
        action="store_true",
        help="compile the training step without XLA (XLA is about 1.8x faster on "
        "CPU here; see docs/model.md)",
    )
    train.add_argument(
        "--teacher",
        type=Path,
        action="append",
        default=[],
        help="distil from this .keras model (repeat for an ensemble): the targets "
        "mix the labels with the teachers' mean output on the training faces",
    )
    train.add_argument(
        "--distill-weight",
        type=_share,
        default=0.5,
        help="share of the target taken from the teachers (default: 0.5)",
    )
    _add_cache(train)
    train.add_argument("--seed", type=int, default=1337, help="random seed")
    train.add_argument(
        "--limit",
        type=int,
        default=None,
        help="train on the first N training images only (smoke runs)",
    )

    ev = sub.add_parser("evaluate", help="report a model's accuracy on a split")
    _add_model_data_cache(ev)
    ev.add_argument(
        "--split",
        default="test",
        help="split to evaluate: test (default), train, or val (the validation "
        "split training holds out)",
    )
    ev.add_argument(
        "--ensemble",
        type=Path,
        action="append",
        default=[],
        metavar="MODEL",
        help="also run this model and report on the mean probabilities (repeat)",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ca = sub.add_parser(
        "calibrate",
        help="fit the temperature and the confidence map on validation and store "
        "them in the model file",
    )
    _add_model_data_cache(ca)
    ca.add_argument(
        "--out", type=Path, help="write a calibrated copy here instead of in place"
    )
    ca.add_argument(
        "--temperature-only",
        action="store_true",
        help="fit the temperature alone, without the map of the top probability",
    )

    fr = sub.add_parser(
        "framing",
        help="compare the analyzer's crops with FER2013's framing (runs "
        "`python -m benchmarks.framing`, a whole-system measurement; its --help "
        "lists the options)",
        add_help=False,
    )
    fr.set_defaults(rest=[])
    fa = sub.add_parser(
        "flip-average",
        help="build the flip-averaged model and keep it if it beats the plain "
        "one on validation",
    )
    _add_model_data_cache(fa)
    fa.add_argument(
        "--out",
        type=Path,
        required=True,
        help="where to save the flip-averaged model (with its card)",
    )
    fa.add_argument(
        "--shift",
        type=float,
        default=0.0,
        help="the two views' windows move by +/- this fraction of the crop "
        "(default 0: the same window)",
    )
    fa.add_argument(
        "--zoom",
        type=float,
        default=0.0,
        help="and are widened / narrowed by this fraction (default 0)",
    )
    av = sub.add_parser(
        "average",
        help="average a run's per-epoch weight snapshots and keep the average "
        "if it beats --model on validation",
    )
    _add_model_data_cache(av)
    av.add_argument(
        "--weights",
        type=Path,
        nargs="+",
        required=True,
        help=".weights.h5 snapshots of --model's architecture",
    )
    av.add_argument(
        "--out", type=Path, required=True, help="where to save the averaged model"
    )
    av.add_argument(
        "--recompute-bn",
        action="store_true",
        help="recompute BatchNorm's moving statistics on the training faces after "
        "averaging (the averaged statistics belong to no single set of weights)",
    )
    cu = sub.add_parser(
        "curves",
        help="plot several runs' learning curves on one figure and print each "
        "run's best epoch (JSON)",
    )
    cu.add_argument(
        "--run",
        type=_labelled_run,
        action="append",
        required=True,
        metavar="LABEL=DIR",
        help="a run folder (with training_log.csv) and its legend label; repeatable",
    )
    cu.add_argument("--out", type=Path, required=True, help="the PNG to write")
    cu.add_argument(
        "--chain",
        action="store_true",
        help="draw the runs end to end (each started from the one before)",
    )
    return parser


def _labelled_run(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=DIR")
    return label, Path(folder)


def _curves(args) -> int:
    from .curves import plot

    for summary in plot(args.run, args.out, chain=args.chain):
        print(json.dumps(summary))
    return 0


def _average(args) -> int:
    from .average import choose

    report = choose(
        args.model,
        args.weights,
        args.data,
        args.out,
        cache_dir=args.cache,
        recompute_bn=args.recompute_bn,
    )
    print(json.dumps(report))
    return 0


def _flip_average(args) -> int:
    from .flip_average import choose

    report = choose(
        args.model,
        args.data,
        args.out,
        cache_dir=args.cache,
        shift=args.shift,
        zoom=args.zoom,
    )
    print(json.dumps(report))
    return 0


def _framing(args) -> int:
    """The framing check runs the whole analyzer, so it lives with the other
    whole-system measurements; this command stays for the scripts that call it."""
    import subprocess

    return subprocess.call([sys.executable, "-m", "benchmarks.framing", *args.rest])


def _recipe(args):
    from dataclasses import replace

    recipe = RECIPES[args.recipe]
    if args.epochs:
        recipe = recipe.with_epochs(args.epochs)
    if args.weights is not None:
        recipe = replace(
            recipe, weights=None if args.weights == "none" else args.weights
        )
    return recipe


def _train(args) -> int:
    from .train import TrainConfig, train

    config = TrainConfig(
        data=args.data,
        out=args.out,
        recipe=_recipe(args),
        checkpoints=args.checkpoints,
        init=args.init,
        cache_dir=args.cache,
        seed=args.seed,
        limit=args.limit,
        snapshots=args.snapshots,
        xla=not args.no_xla,
        teachers=tuple(args.teacher),
        distill_weight=args.distill_weight,
    )
    path = train(config)
    print(f"saved {path} (card: {path.parent / 'model_card.md'})")
    return 0


def _calibrate(args) -> int:
    from .calibrate import calibrate

    report = calibrate(
        args.model,
        args.data,
        args.out,
        cache_dir=args.cache,
        confidence_map=not args.temperature_only,
    )
    val = report["validation"]
    print(
        f"temperature {report['temperature']:g}, confidence map "
        f"{report['confidence_map_knots']} knots; validation ECE "
        f"{val['before']['ece']:.4f} -> {val['after']['ece']:.4f}, NLL "
        f"{val['before']['nll']:.4f} -> {val['after']['nll']:.4f} "
        f"(floor {report['validation_ece_floor']:.4f}; saved in {report['model']})"
    )
    crossed = report.get("validation_cross_fitted")
    if crossed:
        print(
            f"map fitted and scored on different halves of validation: ECE "
            f"{crossed['ece']:.4f} (floor {crossed['ece_floor']:.4f})"
        )
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate

    report = evaluate(
        args.model,
        args.data,
        args.split,
        cache_dir=args.cache,
        ensemble=tuple(args.ensemble),
    )
    if args.json:
        print(json.dumps(report))
        return 0
    what = " + ".join(report.get("ensemble", [str(args.model)]))
    print(
        f"{what} on {args.split} ({report['n']} images): "
        f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f}, "
        f"ECE {report['ece']:.4f}, NLL {report['nll']:.4f} "
        + (
            "(each model calibrated by its own file)"
            if args.ensemble
            else f"(temperature {report['temperature']:g})"
        )
    )
    for name, s in report["per_class"].items():
        print(
            f"  {name:9s} precision {s['precision']:.3f} recall {s['recall']:.3f} "
            f"f1 {s['f1']:.3f} (n={s['support']})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["framing"]:  # every option goes to the framing check itself
        return _framing(argparse.Namespace(rest=argv[1:]))
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from emotion_contract.modelfile import ModelFileError

    from .data import DataError
    from .model import WeightsUnavailable

    try:
        commands = {
            "train": _train,
            "evaluate": _evaluate,
            "calibrate": _calibrate,
            "framing": _framing,
            "flip-average": _flip_average,
            "average": _average,
            "curves": _curves,
        }
        return commands[args.command](args)
    except (
        DataError,
        ModelFileError,
        WeightsUnavailable,
        FileNotFoundError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
