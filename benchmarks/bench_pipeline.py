"""Pipeline throughput against what inference alone allows, measured in one run.

For each model (MoveNet Lightning, PoseNet 481x641), a video file read as fast as
possible (every frame processed) through the pipeline to a 1920x1080 window (pygame,
SDL dummy driver, as on the TV), in alternating rounds, medians reported:

1. **CPU**: the pipeline as ``edgepose-run`` runs it (interpreter in the worker
   process, threads = usable cores) against the best bare ``invoke()`` loop (the best
   thread count of 1..usable cores). Decoding the video and rendering take CPU from the
   interpreter, so this ratio is bounded by the interpreter's share of the host CPU.
2. **Edge TPU stand-in**: invoke replaced by an off-CPU wait of the published Edge TPU
   time (coral.ai/models/pose-estimation: MoveNet Lightning 7.1 ms, PoseNet 481x641
   10.3 ms) in an engine that returns the real model's outputs: the Pi with the
   accelerator, whose ceiling is 1000 / that many frames/s. Its frames come from a
   camera stand-in (the video's frames decoded beforehand at 640 px wide, handed out as
   fast as asked: a camera's buffers cost no decoding). Target >= 0.95 of the ceiling.
   The same from the video file (decoding included) is printed for reference.

Host CPU ms per frame (``time.process_time`` of this process, plus the worker's
``/proc`` times) are printed for each.

    .venv/bin/python benchmarks/bench_pipeline.py [--frames 150] [--rounds 3] [--models movenet,posenet]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, require_shared  # noqa: E402

MODELS = {"movenet": ("movenet-lightning", 7.1), "posenet": ("posenet-mobilenet-v1-075-481x641", 10.3)}
SCREEN = (1920, 1080)


class EdgeTPUStandIn:
    """A model engine for the Pi with the accelerator: preprocess and decode of the real
    model; ``invoke`` waits ``invoke_ms`` without using the CPU (the host waits on the USB
    accelerator the same way) and returns the outputs the real model gave for ``frame``."""

    device = "edgetpu"

    def __init__(self, engine: Any, frame: Any, invoke_ms: float) -> None:
        self._engine, self.invoke_ms = engine, invoke_ms
        self._outputs = engine.invoke(engine.preprocess(frame)[0])

    name = property(lambda self: self._engine.name)
    schema = property(lambda self: self._engine.schema)
    multi_pose = property(lambda self: self._engine.multi_pose)

    def preprocess(self, frame: Any) -> Any:
        return self._engine.preprocess(frame)

    def invoke(self, tensor: Any) -> Any:
        end = time.perf_counter() + self.invoke_ms / 1e3
        while (left := end - time.perf_counter()) > 0:
            time.sleep(left)
        return self._outputs

    def decode(self, outputs: Any, transform: Any, **params: Any) -> Any:
        return self._engine.decode(outputs, transform, **params)

    def close(self) -> None:
        pass


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of this process and of ``pids`` (the workers)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def bare_fps(engine: Any, tensor: Any, frames: int) -> float:
    """Invocations per second of the interpreter alone, on one prepared input."""
    t0 = time.perf_counter()
    for _ in range(frames):
        engine.invoke(tensor)
    return frames / (time.perf_counter() - t0)


class RecordedCamera:
    """A camera stand-in: ``images`` (decoded beforehand) handed out in turn, ``count`` in
    all, as fast as they are asked for (unpaced, so that every one is processed)."""

    def __init__(self, images: list[Any], count: int) -> None:
        from edgepose.sources.base import Source

        class _Camera(Source):
            name = "recorded camera"

            def open(self) -> None:
                pass

            def read(self) -> Any:
                if self._count >= count:
                    return None
                return self._frame(images[self._count % len(images)], time.monotonic())

            def close(self) -> None:
                pass

        self.source = _Camera()


def camera_frames(video: Path, n: int = 60, width: int = 640) -> list[Any]:
    """The first ``n`` frames of ``video``, scaled to ``width`` pixels wide."""
    import cv2

    from edgepose.sources import open_source

    out = []
    with open_source(str(video)) as src:
        for _ in range(n):
            frame = src.read()
            assert frame is not None
            h, w = frame.image.shape[:2]
            out.append(cv2.resize(frame.image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA))
    return out


def pipeline_run(estimator: Any, source: Any, frames: int, pids: list[int]) -> tuple[float, float, Any]:
    """(frames/s, host CPU ms per frame, stats) of one pipeline run; ``source`` is a video
    path (read in a loop) or a list of images (``RecordedCamera``)."""
    from contextlib import nullcontext

    from edgepose.app.pipeline import Pipeline
    from edgepose.render import make_renderer
    from edgepose.sources import open_source

    opened = (nullcontext(RecordedCamera(source, frames).source) if isinstance(source, list)
              else open_source(str(source), loop=True))
    with opened as source, make_renderer("window", size=SCREEN) as renderer:
        pipe = Pipeline(source, estimator, renderer, max_frames=frames, log_every=0)
        cpu0, t0 = cpu_seconds(pids), time.perf_counter()
        stats = pipe.run()
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pids) - cpu0
    return stats.processed / elapsed, cpu / stats.processed * 1e3, stats


def bench(key: str, args: argparse.Namespace, first: Any, camera: list[Any]) -> dict[str, float]:
    from edgepose.app.config import usable_cores
    from edgepose.estimators.base import SingleModelEstimator
    from edgepose.inference.engine import open_engine
    from edgepose.inference.worker import Supervisor

    model, tpu_ms = MODELS[key]
    cores = usable_cores()
    local = {t: open_engine(model, "cpu", num_threads=t) for t in range(1, cores + 1)}
    tensor, _ = local[cores].preprocess(first.image)
    supervisor = Supervisor(num_threads=cores) if args.worker else None
    engine = supervisor.open_engine(model, "cpu") if supervisor else local[cores]
    pids = list(engine.pids.values()) if supervisor else []
    cpu_est = SingleModelEstimator(engine)
    tpu_est = SingleModelEstimator(EdgeTPUStandIn(local[cores], first.image, tpu_ms))
    for e in local.values():
        bare_fps(e, tensor, 5)
    pipeline_run(cpu_est, args.video, 10, pids)  # warm up: worker, renderer, decoder
    best, cpu_fps, cpu_ms, tpu_fps, tpu_ms_cpu, vid_fps, vid_ms, stage = [], [], [], [], [], [], [], None
    for r in range(args.rounds):
        per_thread = {t: bare_fps(e, tensor, args.frames) for t, e in local.items()}
        t_best = max(per_thread, key=per_thread.__getitem__)
        best.append(per_thread[t_best])
        fps, ms, _ = pipeline_run(cpu_est, args.video, args.frames, pids)
        cpu_fps.append(fps)
        cpu_ms.append(ms)
        fps, ms, stats = pipeline_run(tpu_est, camera, args.frames, [])
        tpu_fps.append(fps)
        tpu_ms_cpu.append(ms)
        stage = stats
        fps, ms, _ = pipeline_run(tpu_est, args.video, args.frames, [])
        vid_fps.append(fps)
        vid_ms.append(ms)
        bare = ", ".join(f"{t} thr {v:.1f}" for t, v in per_thread.items())
        print(f"  round {r + 1}: bare invoke {bare} fps; CPU pipeline {cpu_fps[-1]:.1f} fps "
              f"({cpu_ms[-1]:.1f} CPU ms/frame); Edge TPU stand-in: camera {tpu_fps[-1]:.1f} fps "
              f"({tpu_ms_cpu[-1]:.1f} CPU ms/frame), video file {vid_fps[-1]:.1f} fps "
              f"({vid_ms[-1]:.1f} CPU ms/frame)", flush=True)
    if supervisor:
        supervisor.close()
    ceiling = 1e3 / tpu_ms
    result = {
        "best_bare": statistics.median(best), "cpu_fps": statistics.median(cpu_fps),
        "cpu_ratio": statistics.median(p / b for p, b in zip(cpu_fps, best)),
        "cpu_ms": statistics.median(cpu_ms), "tpu_fps": statistics.median(tpu_fps),
        "tpu_ratio": statistics.median(tpu_fps) / ceiling, "tpu_ms": statistics.median(tpu_ms_cpu),
        "ceiling": ceiling, "invoke_ms": tpu_ms, "video_fps": statistics.median(vid_fps),
        "video_ratio": statistics.median(vid_fps) / ceiling, "video_ms": statistics.median(vid_ms),
    }
    print(f"{model}:")
    print(f"  CPU ({'worker' if args.worker else 'in-process'}, {cores} threads): pipeline "
          f"{result['cpu_fps']:.1f} fps vs best bare invoke {result['best_bare']:.1f} fps: ratio "
          f"{result['cpu_ratio']:.3f}; host CPU {result['cpu_ms']:.1f} ms/frame")
    print(f"  Edge TPU stand-in ({tpu_ms} ms invoke, ceiling {ceiling:.1f} fps), camera frames "
          f"{camera[0].shape[1]}x{camera[0].shape[0]}: pipeline {result['tpu_fps']:.1f} fps: ratio "
          f"{result['tpu_ratio']:.3f} (target >= 0.95); host CPU {result['tpu_ms']:.1f} ms/frame")
    print(f"  Edge TPU stand-in, frames decoded from the video file: {result['video_fps']:.1f} fps: "
          f"ratio {result['video_ratio']:.3f}; host CPU {result['video_ms']:.1f} ms/frame")
    if stage is not None:
        print("  stage medians of the camera stand-in's last round (ms): " + ", ".join(
            f"{k[:-3]} {v:.2f}" for k, v in stage.medians.items()))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=SHARED / "videos" / "sports2d_demo.mp4")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default="movenet,posenet", help="comma-separated: movenet, posenet")
    p.add_argument("--worker", action=argparse.BooleanOptionalAction, default=True,
                   help="CPU pipeline with the interpreter in the worker process, as edgepose-run")
    args = p.parse_args(argv)
    require_shared()
    if not args.video.is_file():
        print(f"video {args.video} not found: set EDGEPOSE_SHARED", file=sys.stderr)
        return 2
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from edgepose.app.pipeline import limit_library_threads
    from edgepose.sources import open_source

    limit_library_threads()  # as edgepose-run does
    with open_source(str(args.video)) as src:
        first = src.read()
    assert first is not None
    print(f"video {args.video.name} {first.image.shape[1]}x{first.image.shape[0]}, render "
          f"{SCREEN[0]}x{SCREEN[1]} (SDL {os.environ['SDL_VIDEODRIVER']}), {args.frames} frames x "
          f"{args.rounds} rounds, rounds alternate")
    camera = camera_frames(args.video)
    for key in args.models.split(","):
        bench(key.strip(), args, first, camera)
    return 0


if __name__ == "__main__":
    sys.exit(main())
