"""Pipeline throughput against a bare ``invoke()`` loop on the same model, same run.

Video file source (read as fast as possible, every frame processed) -> PoseNet 481x641 on
the CPU -> an offscreen 1280x720 pygame render (SDL dummy driver) through the project's
renderer. Prints frames per second of both, their ratio (target >= 0.90), the median
end-to-end latency and the per-stage medians. Rounds alternate so that a noisy machine
hurts both sides alike; the median round is reported.

    .venv/bin/python benchmarks/bench_pipeline.py [--frames 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPOSE_SHARED", REPO.parent / "shared")).resolve()


def bare_invoke_fps(engine, tensor, frames: int) -> float:
    """Invocations per second of the interpreter alone, on one prepared input."""
    t0 = time.perf_counter()
    for _ in range(frames):
        engine.invoke(tensor)
    return frames / (time.perf_counter() - t0)


def pipeline_fps(engine, video: Path, frames: int, display: str, size: tuple[int, int]):
    """Processed frames per second of the whole pipeline, and its stats."""
    from edgepose.pipeline import Pipeline
    from edgepose.render import make_renderer
    from edgepose.sources import open_source

    with open_source(str(video), loop=True) as source, \
            make_renderer(display, size=size) as renderer:
        pipe = Pipeline(source, engine, renderer, max_frames=frames, log_every=0)
        t0 = time.perf_counter()
        stats = pipe.run()
        elapsed = time.perf_counter() - t0
    return stats.processed / elapsed, stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="posenet-mobilenet-v1-075-481x641")
    p.add_argument("--video", type=Path, default=SHARED / "videos" / "sports2d_demo.mp4")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="interpreter threads")
    p.add_argument("--display", default="window",
                   help="renderer display; with SDL_VIDEODRIVER=dummy 'window' is offscreen")
    p.add_argument("--size", default="1280x720", help="render surface WIDTHxHEIGHT")
    args = p.parse_args(argv)
    if not args.video.is_file():
        print(f"video {args.video} not found: set EDGEPOSE_SHARED", file=sys.stderr)
        return 2
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("EDGEPOSE_MODEL_PATH", str(SHARED / "models"))
    width, height = (int(v) for v in args.size.lower().split("x"))

    from edgepose.engine import open_engine
    from edgepose.pipeline import limit_library_threads
    from edgepose.sources import open_source

    engine = open_engine(args.model, "cpu", num_threads=args.threads)
    limit_library_threads()  # as edgepose-run does
    with open_source(str(args.video)) as src:
        first = src.read()
    assert first is not None
    tensor, _ = engine.preprocess(first.image)
    bare_invoke_fps(engine, tensor, 10)  # warm up
    pipeline_fps(engine, args.video, 10, args.display, (width, height))

    bare, piped, all_stats = [], [], []
    for r in range(args.rounds):
        bare.append(bare_invoke_fps(engine, tensor, args.frames))
        fps, stats = pipeline_fps(engine, args.video, args.frames, args.display, (width, height))
        piped.append(fps)
        all_stats.append(stats)
        print(f"round {r + 1}: bare invoke {bare[-1]:.1f} fps, pipeline {fps:.1f} fps "
              f"(ratio {fps / bare[-1]:.3f}, {stats.dropped} dropped)")
    ratios = [pp / bb for pp, bb in zip(piped, bare)]
    mid = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]
    stats = all_stats[mid]
    print(f"\nmodel {args.model} on {engine.device}, video {args.video.name} "
          f"{first.image.shape[1]}x{first.image.shape[0]}, render {width}x{height} "
          f"({args.display}, SDL {os.environ.get('SDL_VIDEODRIVER')}), {args.frames} frames x "
          f"{args.rounds} rounds")
    print(f"bare invoke():   median {statistics.median(bare):7.1f} fps")
    print(f"pipeline:        median {statistics.median(piped):7.1f} fps")
    print(f"ratio:           median {statistics.median(ratios):7.3f}  (target >= 0.90)")
    print("per-stage medians of the median round (ms):")
    for key, value in stats.medians.items():
        print(f"  {key:<16}{value:8.2f}")
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
