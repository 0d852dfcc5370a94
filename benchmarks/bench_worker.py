"""The inference worker process against in-process inference, same model, same run.

The pipeline (a video file read as fast as possible, every frame processed, no screen)
runs once with the interpreter in this process and once in the supervised worker
(``edgepose.inference.worker``, as ``edgepose-run`` does), in alternating rounds; medians of
frames/s and their ratio (target >= 0.97) are printed, and the per-invoke cost of the
round trip (bare ``invoke()`` loops, shared-memory copies and the pipe included).

    .venv/bin/python benchmarks/bench_worker.py [--frames 200] [--rounds 5] [--models movenet,posenet]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, require_shared  # noqa: E402

MODELS = {"movenet": "movenet-lightning", "posenet": "posenet-mobilenet-v1-075-481x641"}


def bare_ms(engine: Any, tensor: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        engine.invoke(tensor)
    return (time.perf_counter() - t0) / n * 1e3


def pipeline_fps(engine: Any, video: Path, frames: int) -> float:
    from edgepose.app.pipeline import Pipeline
    from edgepose.estimators.base import SingleModelEstimator
    from edgepose.sources import open_source

    with open_source(str(video), loop=True) as source:
        pipe = Pipeline(source, SingleModelEstimator(engine), None, max_frames=frames, log_every=0)
        t0 = time.perf_counter()
        stats = pipe.run()
    return stats.processed / (time.perf_counter() - t0)


def bench(model: str, args: argparse.Namespace, first: Any) -> float:
    from edgepose.app.config import usable_cores
    from edgepose.inference.engine import open_engine
    from edgepose.inference.worker import Supervisor

    threads = usable_cores()
    local = open_engine(model, "cpu", num_threads=threads)
    with Supervisor(num_threads=threads) as supervisor:
        remote = supervisor.open_engine(model, "cpu")
        tensor, _ = local.preprocess(first.image)
        n = max(20, args.frames // 2)
        for e in (local, remote):
            bare_ms(e, tensor, 5)
            pipeline_fps(e, args.video, 10)
        fps = {"in-process": [], "worker": []}
        ms = {"in-process": [], "worker": []}
        for r in range(args.rounds):
            order = [("in-process", local), ("worker", remote)]
            for name, e in order if r % 2 == 0 else order[::-1]:
                ms[name].append(bare_ms(e, tensor, n))
                fps[name].append(pipeline_fps(e, args.video, args.frames))
            print(f"  round {r + 1}: pipeline in-process {fps['in-process'][-1]:.1f} fps, worker "
                  f"{fps['worker'][-1]:.1f} fps; bare invoke {ms['in-process'][-1]:.2f} vs "
                  f"{ms['worker'][-1]:.2f} ms", flush=True)
    ratios = [w / i for w, i in zip(fps["worker"], fps["in-process"])]
    med = {k: statistics.median(v) for k, v in fps.items()}
    inv = {k: statistics.median(v) for k, v in ms.items()}
    print(f"{model} on the CPU, {threads} threads:")
    print(f"  pipeline: in-process {med['in-process']:.1f} fps, worker {med['worker']:.1f} fps: "
          f"ratio {statistics.median(ratios):.3f} (target >= 0.97)")
    print(f"  bare invoke: in-process {inv['in-process']:.2f} ms, worker {inv['worker']:.2f} ms "
          f"(round trip {1e3 * (inv['worker'] - inv['in-process']):+.0f} us)")
    return statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=SHARED / "videos" / "sports2d_demo.mp4")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", default="movenet,posenet", help="comma-separated: movenet, posenet")
    args = p.parse_args(argv)
    require_shared()
    if not args.video.is_file():
        print(f"video {args.video} not found: set EDGEPOSE_SHARED", file=sys.stderr)
        return 2
    from edgepose.app.pipeline import limit_library_threads
    from edgepose.sources import open_source

    limit_library_threads()  # as edgepose-run does
    with open_source(str(args.video)) as src:
        first = src.read()
    assert first is not None
    print(f"video {args.video.name} {first.image.shape[1]}x{first.image.shape[0]}, no screen, "
          f"{args.frames} frames x {args.rounds} rounds, order alternating")
    for key in args.models.split(","):
        bench(MODELS[key.strip()], args, first)
    return 0


if __name__ == "__main__":
    sys.exit(main())
