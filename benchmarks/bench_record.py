"""What a recording costs per frame: ``RecordingOutput.write`` (annotate + colour
conversion + encode + mux) at 640x480 and 1280x720, and what the fragment flushing adds.

    python benchmarks/bench_record.py [--frames 150] [--repeat 3] [--dir DIR] [--threads 2]

Frames are real (sports2d_demo.mp4, scaled to each size) with the real MoveNet's poses.
For each size it prints the median ms per frame, the median of the runs' means (the
fragment flushes, once a second, show in the mean, not the median) and the slowest
frame, for the flush policies "sync" (the default: each 1 s fragment to the OS, then
fdatasync on a thread of its own), "fragment" (to the OS only) and "buffered"
(FFmpeg's 32 KiB buffering, which a kill can cut mid-fragment), and the default policy
with MPEG-4 part 2 instead of H.264; then, measured alone (less noisy), what handing one
fragment to the OS and syncing it costs. At 30 fps a frame has 33 ms. ``--dir`` puts the
files on the disk to measure (an SD card on the Pi; the default is a temporary folder).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import require_shared

SIZES = ((640, 480), (1280, 720))
RUNS = (("libx264", "sync"), ("libx264", "fragment"), ("libx264", "buffered"), ("mpeg4", "sync"))


def flush_cost(folder: Path, size: int, repeat: int = 30) -> tuple[float, float]:
    """Median ms to hand ``size`` bytes to the OS (os.write), and to also fdatasync them,
    appending to a file in ``folder`` as a recording does once a second."""
    import os

    data = os.urandom(size)
    path = folder / "bench_flush.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for i in range(2 * repeat):
            sync = bool(i % 2)
            t = time.perf_counter()
            os.write(fd, data)
            if sync:
                os.fdatasync(fd)
            times[sync].append((time.perf_counter() - t) * 1e3)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="frames per run (30 a second)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=2, help="encoder threads")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each configuration")
    args = ap.parse_args()
    shared = require_shared()

    import cv2

    from edgepose.inference.engine import open_engine
    from edgepose.outputs.base import FrameResult
    from edgepose.outputs.recording import RecordingOutput
    from edgepose.outputs.records import frame_record
    from edgepose.sources import open_source

    cv2.setNumThreads(1)
    clip = []
    with open_source(str(shared / "videos" / "sports2d_demo.mp4"), loop=True) as src, \
            open_engine("movenet-lightning", "cpu") as engine:
        for frame in src:
            clip.append((frame, engine.infer(frame.image)))
            if len(clip) == args.frames:
                break

    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench_record_"))
    print(f"{args.frames} frames per run, {args.threads} encoder thread(s), files in {folder}")
    print(f"{'size':>9} {'codec':>8} {'flush':>9} {'median':>7} {'mean':>7} {'slowest':>8} "
          f"{'MB/s of video':>13}   (ms per frame: annotate + encode + write)")
    for w, h in SIZES:
        scale_x, scale_y = w / clip[0][0].image.shape[1], h / clip[0][0].image.shape[0]
        results = []
        for frame, poses in clip:
            image = np.ascontiguousarray(cv2.resize(frame.image, (w, h),
                                                    interpolation=cv2.INTER_AREA))
            scaled = type(poses)(xy=poses.xy * np.float32([scale_x, scale_y]), scores=poses.scores,
                                 pose_scores=poses.pose_scores)
            results.append(FrameResult(frame_record(frame, scaled, 0.0), image, scaled))
        ms: dict[tuple[str, str], list[float]] = {run: [] for run in RUNS}
        means: dict[tuple[str, str], list[float]] = {run: [] for run in RUNS}
        sizes: dict[tuple[str, str], int] = {}
        for _ in range(args.repeat):  # interleaved, so that a noisy moment hits every run
            for codec, flush in RUNS:
                path = folder / f"bench_{w}x{h}_{codec}_{flush}.mp4"
                out = RecordingOutput(str(path), fps=30.0, codec=codec, flush=flush,
                                      threads=args.threads)
                out.check()
                out.open()
                samples = []
                for r in results:
                    t = time.perf_counter()
                    out.write(r)
                    samples.append((time.perf_counter() - t) * 1e3)
                out.close()
                samples = samples[1:]  # the first frame sets up the encoder
                ms[codec, flush] += samples
                means[codec, flush].append(statistics.fmean(samples))
                sizes[codec, flush] = path.stat().st_size
                path.unlink()
        for run in RUNS:
            rate = sizes[run] / 1e6 / (len(results) / 30.0)
            print(f"{w:>4}x{h:<4} {run[0]:>8} {run[1]:>9} {statistics.median(ms[run]):7.2f} "
                  f"{statistics.median(means[run]):7.2f} {max(ms[run]):8.2f} {rate:13.2f}")
        fragment = sizes["libx264", "sync"] // max(1, round(len(results) / 30.0))
        to_os, synced = flush_cost(folder, fragment)
        print(f"{'':>9} one fragment ({fragment / 1e3:.0f} kB, 1 s) to the OS: {to_os:.2f} ms, "
              f"with fdatasync: {synced:.2f} ms = {synced / 30:.3f} ms per frame at 30 fps")
        mean = {run: statistics.median(v) for run, v in means.items()}
        buffered = mean["libx264", "buffered"]
        print(f"{'':>9} flushing each fragment costs {mean['libx264', 'fragment'] - buffered:+.2f} "
              f"ms/frame, and fdatasync too {mean['libx264', 'sync'] - buffered:+.2f} ms/frame "
              f"(means, vs buffered: {mean['libx264', 'sync'] / buffered:.2f}x)")

if __name__ == "__main__":
    main()
