"""Speed of the analyzer against the `fer` package and against decoding alone.

In one run on one machine, for each clip in ../shared/media and for woman2.mp4
looped 10 times: decode-only frames/s (the limit), our analyzer with every frame
and with the default sampling, and fer with the same sampling (every frame, and
every Nth frame with N = fps / 5), all timed as whole processes (wall time, peak
RSS). Prints a table with the ratios and writes it as JSON. Also checks memory on a
10x longer input and, on each clip, the quality of the fast path against a slow
reference run.

    python -m benchmarks.speed [--media ../shared/media] [--json bench.json]
        [--peer .peer-venv/bin/python] [--quick] [--repeat N]

The machine is shared and its speed drifts by tens of percent within minutes, so
``--repeat N`` times the 10x loop N more times, ours and fer alternating, and
reports every ratio with the median (``loop_repeats`` in the JSON).

Each timed run is preceded by an untimed run of the same tool on a 30-frame
sample clip: this machine evicts idle files from its page cache within minutes,
so whichever tool ran second after a long run of the other paid for reading its
libraries back from disk (our 5 fps loop: 6.0 s warm, 10.4 s after two idle
minutes, 20.6 s right after fer's every-frame run, with the same CPU time).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .rows import compare

HERE = Path(__file__).resolve().parent


def loop_video(src: Path, dest: Path, times: int) -> Path:
    """Concatenate a clip with itself by remuxing (no re-encoding)."""
    import av

    stream, span = None, 0
    with av.open(str(dest), "w") as out:
        for i in range(times):
            with av.open(str(src)) as inp:
                vin = inp.streams.video[0]
                if stream is None:
                    stream = out.add_stream_from_template(vin)
                end = 0
                for packet in inp.demux(vin):
                    if packet.dts is None:
                        continue
                    end = max(end, packet.pts + (packet.duration or 0))
                    packet.pts += i * span
                    packet.dts += i * span
                    packet.stream = stream
                    out.mux(packet)
                span = span or end
    return dest


def decode_only(path: Path) -> dict:
    """Every frame decoded and converted to BGR as the analyzer does, nothing else."""
    import av

    from analyzer.sources import BgrConverter

    started, n = time.perf_counter(), 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        to_bgr = BgrConverter()
        for frame in container.decode(stream):
            to_bgr(frame)
            n += 1
    seconds = time.perf_counter() - started
    return {"frames": n, "wall_s": round(seconds, 2), "fps": round(n / seconds, 1)}


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of a whole process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        started = time.perf_counter()
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", stats.name, *cmd],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{cmd} failed: {result.stderr[-2000:]}")
        return wall, int(stats.read().split()[-1]) / 1024, result.stdout


MODEL_FLAGS: list[str] = []  # --model PATH when given on the command line


WARM_UP_CLIP = HERE.parent / "samples" / "astronaut_pan.mp4"


def warm_up(cmd: list[str]) -> None:
    """Run a tool untimed on the sample clip, so its files are in the page cache."""
    subprocess.run([*cmd, str(WARM_UP_CLIP)], capture_output=True, check=False)


def ours(path: Path, out: Path, *flags: str, warm: bool = True) -> dict:
    """Our analyzer as a whole process; ``warm=False`` skips the warm-up (runs
    kept for their output, not their time)."""
    if warm:
        with tempfile.TemporaryDirectory() as scratch:
            cmd = [sys.executable, "-m", "analyzer", "--out", scratch, "--no-report"]
            warm_up([*cmd, "-q", *MODEL_FLAGS])
    wall, rss, _ = timed(
        [
            sys.executable,
            "-m",
            "analyzer",
            str(path),
            "--out",
            str(out),
            "--no-report",
            "-q",
            *MODEL_FLAGS,
            *flags,
        ]
    )
    source = pd.read_parquet(out / "sources.parquet").iloc[0]
    n = int(source["frames_analyzed"])
    return {
        "wall_s": round(wall, 2),
        "frames_analyzed": n,
        "fps": round(n / wall, 1),
        "faces_per_s": round(int(source["faces"]) / wall, 1),
        "peak_rss_mb": round(rss),
    }


def fer(peer: Path, path: Path, frequency: int) -> dict:
    warm_up([str(peer), str(HERE / "fer_peer.py")])
    wall, rss, stdout = timed(
        [str(peer), str(HERE / "fer_peer.py"), str(path), "--frequency", str(frequency)]
    )
    n = json.loads(stdout)["frames_analyzed"]
    return {
        "wall_s": round(wall, 2),
        "frames_analyzed": n,
        "fps": round(n / wall, 1),
        "peak_rss_mb": round(rss),
    }


SLOW = ["--every-frame", "--detect-interval", "0", "--detect-max-side", "0"]
QUALITY_VARIANTS = {
    "every_frame": ["--every-frame"],
    "default": [],
    # The noise floor: a second slow run that differs only in MTCNN's runtime.
    "slow_on_mtcnn_package": [*SLOW, "--detector-runtime", "keras"],
}


def quality(path: Path, tmp: Path, variants: dict | None = None) -> dict:
    """Fast paths against a slow reference: detection on every full-size frame.

    For each variant (analyzer flags): the share of its analyzed frames that hold
    a face, and the share of them whose (largest) face gets the reference's
    emotion on the same frame.
    """
    ours(path, tmp / "reference", *SLOW, warm=False)
    ref = _largest_face(tmp / "reference")
    ref_frames = pd.read_parquet(tmp / "reference" / "frames")
    result = {"reference_frames_with_face": round(len(ref) / len(ref_frames), 4)}
    truth = path.with_suffix(".json")
    for name, flags in (variants or QUALITY_VARIANTS).items():
        ours(path, tmp / name, *flags, warm=False)
        frames = pd.read_parquet(tmp / name / "frames")
        fast = _largest_face(tmp / name)
        mine = ref[ref.index.isin(frames["frame_index"])]
        both = mine.rename(columns={"emotion": "emotion_ref"}).join(fast, how="inner")
        agree = (both["emotion_ref"] == both["emotion"]).sum() / max(len(mine), 1)
        result[name] = {
            "flags": " ".join(flags),
            "frames": len(frames),
            "frames_with_face": round(float((frames["faces"] > 0).mean()), 4),
            "emotion_agreement": round(float(agree), 4),
        }
        if name in ("every_frame", "default"):
            # Box by box against the same sampling with a detection on every
            # analyzed frame (benchmarks/rows.py).
            same = tmp / f"{name}-reference"
            ours(path, same, *flags, "--detect-interval", "0", warm=False)
            result[name]["rows"] = compare(
                tmp / name, same, truth if truth.exists() else None
            )
    return result


def largest_per_frame(faces: pd.DataFrame) -> pd.DataFrame:
    """Each frame's largest face (rows with x1..y2), indexed by frame_index."""
    area = (faces["x2"] - faces["x1"]) * (faces["y2"] - faces["y1"])
    largest = faces.assign(area=area).sort_values("area").groupby("frame_index")
    return largest.tail(1).set_index("frame_index").sort_index()


def _largest_face(out: Path) -> pd.DataFrame:
    return largest_per_frame(pd.read_parquet(out / "faces"))[["emotion"]]


def bench_clip(clip: Path, tmp: Path, peer: Path | None) -> dict:
    import av

    with av.open(str(clip)) as c:
        fps = float(c.streams.video[0].average_rate)
    every = max(1, round(fps / 5))
    row = {
        "clip": clip.name,
        "decode": decode_only(clip),
        "ours_every_frame": ours(clip, tmp / f"{clip.stem}-all", "--every-frame"),
        "ours_default": ours(clip, tmp / f"{clip.stem}-default"),
    }
    if peer:
        row["fer_every_frame"] = fer(peer, clip, 1)
        row["fer_every_nth"] = fer(peer, clip, every) | {"n": every}
    return row


def repeated_pairs(clip: Path, tmp: Path, peer: Path, n: int, every: int) -> dict:
    """``n`` more alternating ours / fer pairs on ``clip``, every frame and at
    the default sampling (fer: every ``every``-th frame)."""
    pairs: dict[str, list[dict]] = {"every_frame": [], "default": []}
    for i in range(n):
        for name, flags, frequency in (
            ("every_frame", ["--every-frame"], 1),
            ("default", [], every),
        ):
            mine = ours(clip, tmp / f"repeat{i}-{name}", *flags)
            theirs = fer(peer, clip, frequency)
            pairs[name].append(
                {
                    "ours_wall_s": mine["wall_s"],
                    "fer_wall_s": theirs["wall_s"],
                    "ratio": round(mine["fps"] / theirs["fps"], 2),
                }
            )
    result = {}
    for name, runs in pairs.items():
        ratios = [r["ratio"] for r in runs]
        result[name] = {
            "pairs": runs,
            "ratios": ratios,
            "median": float(np.median(ratios)),
        }
    return result


def print_table(rows: list[dict]) -> None:
    print(
        f"{'clip':24s} {'decode':>8s} {'ours all':>9s} {'fer all':>8s} {'ratio':>6s}"
        f" {'ours 5fps':>9s} {'fer 1/N':>8s} {'ratio':>6s} {'ours/decode':>11s}"
    )
    for r in rows:
        fa, fn = r.get("fer_every_frame", {}), r.get("fer_every_nth", {})
        ratio = lambda a, b: f"{a / b:6.2f}" if b else "     -"  # noqa: E731
        print(
            f"{r['clip']:24s} {r['decode']['fps']:8.0f} "
            f"{r['ours_every_frame']['fps']:9.1f} {fa.get('fps', 0):8.1f} "
            f"{ratio(r['ours_every_frame']['fps'], fa.get('fps'))} "
            f"{r['ours_default']['fps']:9.1f} {fn.get('fps', 0):8.1f} "
            f"{ratio(r['ours_default']['fps'], fn.get('fps'))} "
            f"{r['ours_every_frame']['fps'] / r['decode']['fps']:11.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--peer", type=Path, default=Path(".peer-venv/bin/python"))
    parser.add_argument("--json", type=Path, default=Path("bench.json"))
    parser.add_argument(
        "--quick", action="store_true", help="skip the 10x-longer memory check"
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="our model (default: the shipped one)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        metavar="N",
        help="time the 10x loop N more times against fer, alternating (default 0)",
    )
    args = parser.parse_args()
    if args.model:
        MODEL_FLAGS.extend(["--model", str(args.model)])
    peer = args.peer if args.peer.exists() else None
    if peer is None:
        print(f"no peer at {args.peer}: fer columns left empty (benchmarks/README.md)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        woman2 = args.media / "woman2.mp4"
        looped = loop_video(woman2, tmp / "woman2_x10.mp4", 10)
        media = sorted(args.media.glob("*.mp4"))
        rows = [bench_clip(clip, tmp, peer) for clip in (*media, looped)]
        result = {"clips": rows, "quality_woman2": quality(woman2, tmp / "q")}
        for clip in media:
            if clip != woman2:
                result[f"quality_{clip.stem}"] = quality(clip, tmp / f"q-{clip.stem}")
        # The loop, 10x the frames: 5 fps and the keyframes fall at a different
        # phase in each repetition, so 774 distinct analyzed frames instead of 78.
        fast_paths = {k: QUALITY_VARIANTS[k] for k in ("every_frame", "default")}
        result["quality_woman2_x10"] = quality(looped, tmp / "q10", fast_paths)
        if peer and args.repeat:
            every = rows[-1]["fer_every_nth"]["n"]
            result["loop_repeats"] = repeated_pairs(
                looped, tmp, peer, args.repeat, every
            )
        if not args.quick:
            longer = loop_video(woman2, tmp / "woman2_x100.mp4", 100)
            result["memory"] = {
                "x10_default": ours(looped, tmp / "m10")["peak_rss_mb"],
                "x100_default": ours(longer, tmp / "m100")["peak_rss_mb"],
            }
    print_table(rows)
    for key in (k for k in result if k.startswith("quality_")):
        print(f"{key}:", json.dumps(result[key]))
    for name, rep in result.get("loop_repeats", {}).items():
        print(
            f"woman2_x10 {name}, ours / fer over {len(rep['ratios'])} more pairs: "
            f"{rep['ratios']}, median {rep['median']:.2f}"
        )
    if "memory" in result:
        m = result["memory"]
        print(
            f"peak RSS x10 {m['x10_default']} MB, x100 {m['x100_default']} MB, "
            f"ratio {m['x100_default'] / m['x10_default']:.2f}"
        )
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
