"""What the top-down pipeline costs per frame for 1 to 4 people: ``movenet-multipose-fast``
(MoveNet Lightning on each person; what the default runs offline without Thunder; the
default with Thunder: ``bench_accuracy.py``).

    python benchmarks/bench_topdown.py [--repeat 15] [--frames 30]

For images showing 1, 2, 3 and 4 people (../shared), on the CPU and with an Edge TPU
stand-in, prints per frame: model invokes and the median ms of each stage
(preprocess = resizing and crops, invoke = model calls only, decode = decoders, duplicate
removal and tracking, frame = the whole prepare + invoke + finish in series), plus
``cpu`` = frame minus invokes (what the Pi's CPU does per frame besides waiting):

- ``still``: ``estimate()`` on the image (a still image: proposals, then one crop each);
- ``video``: the image held for ``--frames`` frames through the pipeline's stages:
  proposals every 5th frame (``proposal``), temporal crops in between (``tracking``).

The Edge TPU stand-in is engine-like: the real CPU engine's preprocessing and decoding,
and an ``invoke`` that sleeps the published Edge TPU time (PoseNet 481x641 10.3 ms,
MoveNet Lightning 7.1 ms; Coral's model pages) and returns the outputs the CPU model
computed beforehand for the same input tensor (recorded in a first pass over the same
frames). It shows how the CPU work around the invokes adds up when the invokes leave the
CPU; it measures nothing of a real accelerator (USB transfers, parameter caching).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import load_rgb, require_shared

from edgepose.estimators.base import ESTIMATOR_STAGES, Estimate
from edgepose.estimators.topdown import TopDownEstimator, TopDownParams
from edgepose.inference.engine import open_engine
from edgepose.models.registry import get_pipeline

# Published Edge TPU invoke times (ms): Coral's model pages, USB Accelerator.
EDGETPU_MS = {"posenet-mobilenet-v1-075-481x641": 10.3, "movenet-lightning": 7.1, "movenet-thunder": 13.8}
IMAGES = {1: ("images", "tfexamples_image1.png"), 2: ("images", "posenet_test_couple.jpg"),
          3: ("images", "ultralytics_bus.jpg"),
          4: ("data", "coco17_dev", "images", "coco__coco__000000196141.jpg")}


class EdgeTpuStandIn:
    """An engine whose invoke sleeps a published Edge TPU time and returns the real CPU
    model's outputs for that input, computed beforehand (``recording`` pass)."""

    def __init__(self, engine: Any, invoke_ms: float) -> None:
        self.engine, self.invoke_ms = engine, invoke_ms
        self.recording = True
        self.bookkeeping_s = 0.0  # CPU seconds the replay's lookups took (not the Pi's work)
        self.slept_s = 0.0  # wall seconds the replay's invokes slept
        self._outputs: dict[bytes, list[Any]] = {}
        self.name, self.schema, self.multi_pose = engine.name, engine.schema, engine.multi_pose
        self.input_size = engine.input_size
        self.device = "edgetpu"

    def preprocess(self, frame: np.ndarray) -> Any:
        return self.engine.preprocess(frame)

    def decode(self, outputs: list[Any], transform: Any, **params: Any) -> Any:
        return self.engine.decode(outputs, transform, **params)

    def invoke(self, tensor: np.ndarray) -> list[Any]:
        c0 = time.process_time()
        key = hashlib.blake2b(tensor.tobytes(), digest_size=16).digest()
        if self.recording:
            self._outputs[key] = self.engine.invoke(tensor)
            return self._outputs[key]
        try:
            outputs = self._outputs[key]
        except KeyError:
            raise SystemExit(f"{self.name}: an input the recording pass did not see; the "
                             "replayed frames must be the recorded ones") from None
        # the lookup is the stand-in's own CPU work, not the Pi's: kept apart
        self.bookkeeping_s += time.process_time() - c0
        t0 = time.perf_counter()
        time.sleep(self.invoke_ms / 1e3)
        self.slept_s += time.perf_counter() - t0  # the sleep as it happened (it overshoots)
        return outputs

    def close(self) -> None:
        self.engine.close()


def _open(standin: bool) -> TopDownEstimator:
    m = get_pipeline("movenet-multipose-fast")
    assert m is not None
    engines = [open_engine(name, "cpu") for name in (m.proposer, m.landmark)]
    if standin:
        engines = [EdgeTpuStandIn(e, EDGETPU_MS[e.name]) for e in engines]
    return TopDownEstimator(*engines, TopDownParams.from_dict(m.params), m.name)


def _timed(run: Callable[[], Estimate]) -> tuple[Estimate, float]:
    t0 = time.perf_counter()
    est = run()
    return est, (time.perf_counter() - t0) * 1e3


def _video(est: TopDownEstimator, image: np.ndarray, frames: int) -> list[tuple[Estimate, float]]:
    est.reset()
    return [_timed(lambda i=i: est.finish(est.invoke(est.prepare(image, i / 30))))
            for i in range(frames)]


def _still(est: TopDownEstimator, image: np.ndarray, repeat: int) -> list[tuple[Estimate, float]]:
    return [_timed(lambda: est.estimate(image)) for _ in range(repeat)]


def _row(label: str, runs: list[tuple[Estimate, float]]) -> str:
    if not runs:
        return f"{label:34} (no frames)"
    med = {k: statistics.median(r.timings.get(k, 0.0) for r, _ in runs) for k in ESTIMATOR_STAGES}
    frame = statistics.median(ms for _, ms in runs)
    cpu = statistics.median(ms - r.timings.get("invoke_ms", 0.0) for r, ms in runs)
    invokes = statistics.mean(r.invokes for r, _ in runs)
    people = statistics.median(len(r.poses) for r, _ in runs)
    return (f"{label:34} {people:6.0f} {invokes:8.2f} {med['preprocess_ms']:11.2f} "
            f"{med['invoke_ms']:8.2f} {med['decode_ms']:8.2f} {frame:8.2f} {cpu:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15, help="estimate() calls per still image")
    ap.add_argument("--frames", type=int, default=30, help="frames of each held image")
    args = ap.parse_args()
    shared = require_shared()
    print(f"{'people / device / frames':34} {'found':>6} {'invokes':>8} {'preprocess':>11} "
          f"{'invoke':>8} {'decode':>8} {'frame':>8} {'cpu':>8}  (per frame, median ms)")
    for people, parts in IMAGES.items():
        image = load_rgb(shared.joinpath(*parts))
        for standin in (False, True):
            est = _open(standin)
            _still(est, image, 1)  # warm up (and, for the stand-in, record)
            _video(est, image, args.frames)
            if standin:
                for e in (est.proposer_engine, est.landmark_engine):
                    e.recording = False  # type: ignore[attr-defined]
            device = "edgetpu stand-in" if standin else "cpu"
            still = _still(est, image, args.repeat)
            video = _video(est, image, args.frames)[1:]  # the first frame finds them: a still
            proposal = [v for v in video if "proposer_invoke_ms" in v[0].timings]
            tracking = [v for v in video if "proposer_invoke_ms" not in v[0].timings]
            print(_row(f"{people} {device} still", still))
            print(_row(f"{people} {device} video", video))
            print(_row(f"{people} {device}   proposal", proposal))
            print(_row(f"{people} {device}   tracking", tracking))
            est.close()


if __name__ == "__main__":
    main()
