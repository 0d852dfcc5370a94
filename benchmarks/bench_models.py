"""Median preprocess / invoke / decode times for each registered model on the CPU.

    python benchmarks/bench_models.py [--repeat 50] [--device cpu]

Prints one row per model. ``decode`` is timed inside the per-frame loop, right after
``invoke`` (caches cold, as in the pipeline); ``decode warm`` repeats the decode of one
frame's outputs back to back. The PoseNet 481x641 multi-pose decode target is <= 1 ms.
"""

from __future__ import annotations

import argparse
import time

from _common import load_rgb, median_ms, require_shared

from edgepose.core.errors import EdgePoseError
from edgepose.inference.engine import open_engine
from edgepose.models.registry import list_manifests

IMAGES = {"movenet": "coral_squat.bmp", "posenet_multi": "posenet_test_couple.jpg"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    shared = require_shared()
    print(f"{'model':36} {'device':8} {'preprocess':>11} {'invoke':>9} {'decode':>9} {'decode warm':>12}"
          f"  (median ms, n={args.repeat})")
    for name, m in sorted(list_manifests().items()):
        try:
            eng = open_engine(name, args.device)
        except EdgePoseError as exc:
            print(f"{name:36} skipped: {exc}")
            continue
        if eng.name != name:  # an Edge TPU model swapped for its CPU twin
            print(f"{name:36} skipped: runs as {eng.name} on {eng.device}")
            continue
        frame = load_rgb(shared / "images" / IMAGES.get(m.decoder, "coral_squat.bmp"))
        pre, inv, dec = [], [], []
        eng.infer(frame)  # warm-up
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            tensor, transform = eng.preprocess(frame)
            t1 = time.perf_counter()
            outputs = eng.invoke(tensor)
            t2 = time.perf_counter()
            eng.decode(outputs, transform)
            t3 = time.perf_counter()
            pre.append(t1 - t0), inv.append(t2 - t1), dec.append(t3 - t2)
        warm = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            eng.decode(outputs, transform)
            warm.append(time.perf_counter() - t0)
        print(f"{name:36} {eng.device:8} {median_ms(pre):11.2f} {median_ms(inv):9.2f} {median_ms(dec):9.3f}"
              f" {median_ms(warm):12.3f}")


if __name__ == "__main__":
    main()
