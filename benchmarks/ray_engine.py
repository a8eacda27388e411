"""The Ray engine against the local engine on one machine.

A folder of 8 clips (the three in ../shared/media, the bundled sample, and longer
copies of each made by remuxing), analyzed at the default settings by
``python -m analyzer FOLDER --engine local`` and ``--engine ray`` as whole
processes, one run each: wall times and their ratio; the start-up cost (each
engine on one image, the difference); and peak resident memory of the driver
(``/usr/bin/time``), of each Ray worker and of Ray's own processes (sampled from
/proc every 0.2 s).

    python -m benchmarks.ray_engine [--workers N] [--scale 1] [--json ray.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from .speed import HERE, loop_video, timed

MEDIA = HERE.parent.parent / "shared" / "media"
SAMPLE = HERE.parent / "samples" / "astronaut_pan.mp4"


def make_folder(root: Path, scale: int) -> Path:
    root.mkdir(parents=True)
    clips = [
        MEDIA / "woman2.mp4",
        MEDIA / "phone_street.mp4",
        MEDIA / "cuts.mp4",
        SAMPLE,
    ]
    for clip in clips:
        shutil.copy(clip, root / clip.name)
    for clip, times in zip(clips, (3, 4, 2, 5), strict=True):
        loop_video(clip, root / f"{clip.stem}_x{times * scale}.mp4", times * scale)
    return root


def rss_by_kind() -> dict[str, float]:
    """Resident MB of Ray's processes now: each worker, and the rest together."""
    found = {"workers": [], "ray": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if (
            b"ray" not in cmd
            or b"benchmarks.ray_engine" in cmd
            or b"-m\x00analyzer" in cmd
        ):
            continue
        kb = next(
            (int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")),
            0,
        )
        if b"ray::AnalyzerWorker" in cmd:
            found["workers"].append(kb / 1024)
        else:
            found["ray"] += kb / 1024
    return found


def sample_ray(stop: threading.Event, peaks: dict) -> None:
    while not stop.is_set():
        now = rss_by_kind()
        peaks["worker"] = max([peaks["worker"], *now["workers"]])
        peaks["workers_sum"] = max(peaks["workers_sum"], sum(now["workers"]))
        peaks["ray_other"] = max(peaks["ray_other"], now["ray"])
        time.sleep(0.2)


def analyze(folder: Path, out: Path, *flags: str) -> dict:
    peaks = {"worker": 0.0, "workers_sum": 0.0, "ray_other": 0.0}
    stop = threading.Event()
    sampler = threading.Thread(target=sample_ray, args=(stop, peaks))
    sampler.start()
    try:
        wall, rss, _ = timed(
            [
                sys.executable,
                "-m",
                "analyzer",
                str(folder),
                "--out",
                str(out),
                "--no-report",
                "-q",
                *flags,
            ]
        )
    finally:
        stop.set()
        sampler.join()
    return {"wall_s": round(wall, 2), "driver_peak_rss_mb": round(rss)} | {
        f"{k}_peak_rss_mb": round(v) for k, v in peaks.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int)
    parser.add_argument(
        "--scale", type=int, default=1, help="make the four long copies N times longer"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ray_flags = ["--engine", "ray"] + (
        ["--workers", str(args.workers)] if args.workers else []
    )
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        folder = make_folder(tmp / "clips", args.scale)
        one = tmp / "one"
        one.mkdir()
        shutil.copy(HERE.parent / "samples" / "astronaut.jpg", one)
        analyze(one, tmp / "warm", "--engine", "local")  # files into the page cache
        start_local = analyze(one, tmp / "s-local")
        start_ray = analyze(one, tmp / "s-ray", *ray_flags)
        local = analyze(folder, tmp / "local")
        on_ray = analyze(folder, tmp / "ray", *ray_flags)
        frames = sum(1 for _ in folder.iterdir())
    result = {
        "clips": frames,
        "scale": args.scale,
        "local": local,
        "ray": on_ray,
        "ratio_ray_to_local": round(on_ray["wall_s"] / local["wall_s"], 2),
        "startup_s": {
            "local_one_image": start_local["wall_s"],
            "ray_one_image": start_ray["wall_s"],
            "ray_extra": round(start_ray["wall_s"] - start_local["wall_s"], 2),
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
