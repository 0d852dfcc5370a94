"""MoveNet Thunder as the landmark model of the default top-down pipeline: accuracy on
both dev sets and the Edge TPU stand-in cost for 1, 2, 4 and 6 people.

    python benchmarks/bench_thunder.py --landmark THUNDER.tflite [--frames 10] [--cost-only]

``THUNDER.tflite``: Coral's int8 ``movenet_single_pose_thunder_ptq.tflite`` (registry
``movenet-thunder``, when fetched) or a stand-in built by the tools from TF Hub's float
Thunder (``edgepose-tools quantize ../shared/models/tfjs/movenet-thunder --input-size
256x256 --decoder movenet --schema coco17 --representative DIR``). Any single-pose MoveNet
file with uint8 or float input works (letterboxed, raw pixels).

Accuracy (pycocotools AP/AR on whole images; parameters tuned on coco17_dev, limbs12_dev is
the check set): the default ``movenet-multipose`` pipeline with this file as its landmark
model, and the mean OKS of the top-scored pose on the one-person images of both sets.

Cost: the pipeline (this landmark) over an image of 1 person and the couple image tiled
1, 2 and 3 times, held for ``--frames`` frames; the mean invokes per frame at the published
Edge TPU times (PoseNet 481x641 10.3 ms, Lightning 7.1 ms, Thunder 13.8 ms) plus the wall
ms outside the invokes (CPU work; an overestimate on a loaded machine) are the frame's ms
on the Pi with an accelerator. ``cost-aware`` runs Thunder while the frame holds at most
``--thunder-max`` people and Lightning beyond.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import load_rgb, require_shared
from bench_accuracy import SETS, _one_person_oks

from edgepose.inference.engine import open_engine
from edgepose.models.registry import get_pipeline
from edgepose.estimators.params import TopDownParams
from edgepose.estimators.topdown import TopDownEstimator

PROPOSER_MS, LIGHTNING_MS, THUNDER_MS = 10.3, 7.1, 13.8


def _pipeline(landmark: Path) -> TopDownEstimator:
    m = get_pipeline("movenet-multipose")
    assert m is not None
    lm = open_engine(landmark, "cpu", decoder="movenet", schema="coco17", resize="letterbox")
    params = replace(TopDownParams.from_dict(m.params))
    return TopDownEstimator(open_engine(m.proposer, "cpu"), lm, params, m.name + "+" + landmark.stem)


def _cost(est: TopDownEstimator, image: np.ndarray, frames: int) -> tuple[float, float, float, float]:
    """Mean per frame: proposer invokes, landmark invokes, people found, wall ms outside the
    invokes (preprocessing, decoding, matching: the CPU's share of the frame)."""
    est.reset()
    rows = []
    for i in range(frames):
        t0 = time.perf_counter()
        r = est.finish(est.invoke(est.prepare(image, i / 30)))
        cpu = (time.perf_counter() - t0) * 1e3
        inv_ms = r.timings.get("proposer_invoke_ms", 0.0) + r.timings.get("landmark_invoke_ms", 0.0)
        proposals = 1.0 if "proposer_invoke_ms" in r.timings else 0.0
        rows.append((proposals, r.invokes - proposals, float(len(r.poses)), max(cpu - inv_ms, 0.0)))
    return tuple(statistics.mean(c) for c in zip(*rows))  # type: ignore[return-value]


def main() -> None:
    from tools.evaluate import evaluate_coco

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--landmark", type=Path, required=True, help="a single-pose MoveNet Thunder .tflite")
    ap.add_argument("--frames", type=int, default=10, help="frames of each held image (cost)")
    ap.add_argument("--thunder-max", type=int, default=2, help="cost-aware: Thunder up to this many people")
    ap.add_argument("--cost-only", action="store_true", help="only the stand-in cost")
    args = ap.parse_args()
    if not args.landmark.is_file():
        raise SystemExit(f"{args.landmark}: no such file; give a MoveNet Thunder .tflite with --landmark")
    shared = require_shared()
    est = _pipeline(args.landmark)
    if not args.cost_only:
        cells = []
        for s in SETS:
            root = shared / "data" / s
            m = evaluate_coco([est], root / "person_keypoints.json", root / "images",
                              full_images=True)["models"][0]
            cells.append(f"{s} AP {m['AP']:.3f} AR {m['AR']:.3f}")
        print(f"{args.landmark.name}: " + ", ".join(cells) + f", 1-person OKS {_one_person_oks(est, shared):.3f}",
              flush=True)
    one = load_rgb(shared / "images" / "tfexamples_image1.png")
    couple = load_rgb(shared / "images" / "posenet_test_couple.jpg")
    images = {1: one, 2: couple, 4: np.concatenate([couple] * 2, axis=1),
              6: np.concatenate([couple] * 3, axis=1)}
    print(f"\nEdge TPU stand-in (published invoke ms + CPU ms), {args.frames} frames held:")
    print(f"{'people':>6} {'found':>5} {'prop/frame':>10} {'lm/frame':>8} {'CPU ms':>7} "
          f"{'Lightning ms (fps)':>19} {'Thunder ms (fps)':>17} {'cost-aware ms (fps)':>20}")
    for people, image in images.items():
        props, lms, found, cpu = _cost(est, image, args.frames)
        light = props * PROPOSER_MS + lms * LIGHTNING_MS + cpu
        thunder = props * PROPOSER_MS + lms * THUNDER_MS + cpu
        aware = thunder if found <= args.thunder_max else light
        print(f"{people:>6} {found:>5.1f} {props:>10.2f} {lms:>8.2f} {cpu:>7.1f} "
              + " ".join(f"{ms:>11.1f} ({1000 / ms:>4.0f})" for ms in (light, thunder, aware)))
    est.close()


if __name__ == "__main__":
    main()
