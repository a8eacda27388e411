"""Run the `fer` package on one video, the way its README does, and time it.

Runs inside the peer's own virtual environment (see benchmarks/README.md): fer is
installed with --no-deps, so neither facenet-pytorch (only for its optional MTCNN)
nor moviepy (only for audio) is present. OpenCV is the headless build, whose GUI
functions raise; fer calls them only for display, but they are replaced with no-ops
so that a stray call cannot end the run. Nothing else is changed.

    .peer-venv/bin/python benchmarks/fer_peer.py VIDEO [--frequency N]
"""

import argparse
import json
import resource
import sys
import time

import cv2

for name in ("imshow", "waitKey", "destroyAllWindows", "namedWindow"):
    setattr(cv2, name, lambda *args, **kwargs: -1)

started = time.perf_counter()
from fer.classes import Video  # noqa: E402
from fer.fer import FER  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("--frequency", type=int, default=1)
    args = parser.parse_args()
    detector = FER()  # defaults: Haar cascade + the quantized TFLite mini-Xception
    video = Video(args.video, outdir="/tmp/fer-peer-out")
    rows = video.analyze(
        detector,
        display=False,
        frequency=args.frequency,
        save_frames=False,
        save_video=False,
        annotate_frames=False,
        zip_images=False,
        output="pandas",
    )
    json.dump(
        {
            "frames_analyzed": len(rows),
            "seconds_in_process": round(time.perf_counter() - started, 2),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
