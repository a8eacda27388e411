"""Live mode on 2 cores: a 30 fps clip played in real time, looped.

Runs ``python -m analyzer.live woman2.mp4 --realtime --reconnect --serve
127.0.0.1:0`` (29.97 fps, looped by reopening at its end) for ``--duration``
seconds as a whole process, samples its resident memory every 5 s, then reads
``run.json``: frames analyzed per second, frames dropped, and the latency from a
frame's arrival to its rows and to its annotated frame (median and 95th
percentile), against the targets (15 frames/s, p95 under 200 ms).

    python -m benchmarks.live [--duration 600] [--json live.json]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIP = HERE.parent.parent / "shared" / "media" / "woman2.mp4"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "live"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "analyzer.live",
                str(args.clip),
                "--out",
                str(out),
                "--realtime",
                "--reconnect",
                "--serve",
                "127.0.0.1:0",
            ],
            stderr=subprocess.DEVNULL,
        )
        started, samples = time.monotonic(), []
        while time.monotonic() - started < args.duration and proc.poll() is None:
            time.sleep(5)
            value = rss_mb(proc.pid)
            if value is not None:
                samples.append((round(time.monotonic() - started), round(value, 1)))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        facts = json.loads((out / "run.json").read_text())
    minute = [v for t, v in samples if t <= 60]
    last = [v for t, v in samples if t > samples[-1][0] - 60]
    result = {
        "clip": args.clip.name,
        "clip_fps": facts["source_info"].get("fps"),
        "duration_s": args.duration,
        "frames_received": facts["frames_received"],
        "frames_analyzed": facts["frames_analyzed"],
        "frames_dropped": facts["frames_dropped"],
        "analyzed_share": round(facts["frames_analyzed"] / facts["frames_received"], 3),
        "analyzed_fps": facts["analyzed_fps"],
        "segments": facts["segments"],
        "latency_rows": facts["latency_rows"],
        "latency_view": facts["latency_view"],
        "rss_mb_first_minute_max": max(minute) if minute else None,
        "rss_mb_last_minute_max": max(last) if last else None,
        "rss_mb_peak": max(v for _, v in samples) if samples else None,
        "rss_samples": samples,
        "targets": {
            "analyzed_fps >= 15": facts["analyzed_fps"] >= 15,
            "p95 rows < 200 ms": (facts["latency_rows"]["p95_ms"] or 1e9) < 200,
            "p95 view < 200 ms": (facts["latency_view"]["p95_ms"] or 1e9) < 200,
        },
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
