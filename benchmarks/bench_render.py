"""Median cost of drawing one frame: ``annotate()`` (recordings, snapshots) and the pygame
view at TV resolution, offscreen under SDL's dummy driver.

    python benchmarks/bench_render.py [--repeat 100] [--screen 1920x1080]

Prints medians in ms; at 30 FPS a frame has 33 ms for everything, so drawing should
stay a small fraction of it.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _common import load_rgb, median_ms, require_shared


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--screen", default="1920x1080", help="window size WIDTHxHEIGHT")
    args = ap.parse_args()
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    shared = require_shared()

    from edgepose.core.pose import Poses
    from edgepose.core.preprocess import resize
    from edgepose.render import annotate, make_renderer

    frame, _ = resize(load_rgb(shared / "images" / "coral_squat.bmp"), (480, 640), "letterbox")
    rng = np.random.default_rng(0)
    poses = Poses(xy=rng.uniform([0, 0], [640, 480], (2, 17, 2)), scores=np.ones((2, 17)),
                  pose_scores=np.ones(2))
    w, h = (int(v) for v in args.screen.split("x"))
    overlay = {"FPS": "30.0", "infer": "11.2 ms", "poses": "2"}

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        fn()
        samples = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return median_ms(samples)

    print(f"annotate 640x480, 2 poses:            {timed(lambda: annotate(frame, poses)):6.2f} ms")
    with make_renderer("window", size=(w, h)) as r:
        ms = timed(lambda: r.draw(frame, poses, overlay))
    print(f"pygame draw 640x480 -> {w}x{h}, 2 poses: {ms:6.2f} ms  ({ms / 33.3:.0%} of a 30 FPS frame)")


if __name__ == "__main__":
    main()
