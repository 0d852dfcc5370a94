"""Accuracy of the default multi-person model and its candidates on both dev sets, and
what the default costs per frame with an Edge TPU stand-in for 1, 2, 4 and 6 people.

    python benchmarks/bench_accuracy.py [--thunder FILE] [--artifacts DIR] [--frames 30]

Hold-out discipline: the top-down parameters were chosen on coco17_dev; limbs12_dev is
the check (its images never chose a value). For each candidate it prints AP and AR
(pycocotools, whole images) on both sets, and the mean OKS of the top-scored pose on the
images showing one person (both sets). Candidates:

- ``default``: ``movenet-multipose`` as its manifest says (PoseNet proposals, MoveNet
  Thunder on each person). Its Thunder is Coral's int8 file when fetched, else ``--thunder
  FILE``: a stand-in built by the tools from TF Hub's float Thunder (``edgepose-tools
  quantize ../shared/models/tfjs/movenet-thunder --input-size 256x256 --decoder movenet
  --schema coco17 --representative ../shared/images``); skipped without either;
- ``fast``: ``movenet-multipose-fast`` (MoveNet Lightning on each person; what the default
  runs offline without Thunder); ``fast-before``: the same with the earlier round's changes
  off (no whole-frame fallback, no agreement weighting, temporal crops always re-cropped);
- ``posenet``: PoseNet 481x641 alone; ``lightning``: MoveNet Lightning once on the whole frame;
- with ``--artifacts DIR`` holding float TFLite conversions of TF Hub's models (the TF.js
  importer's output; CPU only, skipped when absent, nothing in the repository needs that
  folder): ``multipose-float``, TF Hub's float MoveNet MultiPose, the anchor
  (``movenet-multipose.tflite``, [1,6,56]); ``lm=lightning-float`` and ``lm=thunder-float``,
  the default's params with float MoveNet Lightning or Thunder as the landmark model
  (``movenet-lightning.tflite``, ``movenet-thunder.tflite``).

Cost: the default (and ``fast``) on an image of 1 person and on the couple image tiled
1, 2 and 3 times (2, 4, 6 people), held for ``--frames`` frames through the pipeline's
stages, with the Edge TPU stand-in of ``bench_topdown.py`` (invokes sleep the published
times: PoseNet 481x641 10.3 ms, MoveNet Lightning 7.1 ms, Thunder 13.8 ms): mean ms per
frame and frames/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from _common import load_rgb, require_shared
from bench_topdown import EDGETPU_MS, EdgeTpuStandIn

from edgepose.core.pose import Poses
from edgepose.estimators.base import Estimate
from edgepose.estimators.factory import open_estimator
from edgepose.estimators.nms import oks
from edgepose.estimators.params import TopDownParams
from edgepose.estimators.topdown import TopDownEstimator
from edgepose.inference.engine import open_engine
from edgepose.models.registry import get_pipeline

SETS = ("coco17_dev", "limbs12_dev")
# Float conversions that --artifacts may hold (CPU only: experiments, not Edge TPU models).
ARTIFACTS = {"multipose-float": "movenet-multipose.tflite",
             "lm=lightning-float": "movenet-lightning.tflite", "lm=thunder-float": "movenet-thunder.tflite"}
BEFORE = {"full_frame_fallback": False, "agreement_weight": 0.0, "steady_iou": 1.0, "steady_drop": 1.0}


class MultiPoseFloat:
    """TF Hub's float MultiPose as a TFLite file (float32 [1,256,256,3] raw pixels,
    letterboxed): [1,6,56] = 17 x (y, x, score) normalised to the input, box, score."""

    name, device, schema, multi_pose = "multipose-float", "cpu", "coco17", True

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=2)
        self.interp.allocate_tensors()

    def estimate(self, image: np.ndarray, timestamp: float = 0.0) -> Estimate:
        from edgepose.core.preprocess import resize

        resized, transform = resize(image, (256, 256), "letterbox")
        inp = self.interp.get_input_details()[0]
        self.interp.set_tensor(inp["index"], resized[None].astype(np.float32))
        t0 = time.perf_counter()
        self.interp.invoke()
        ms = (time.perf_counter() - t0) * 1e3
        out = self.interp.get_tensor(self.interp.get_output_details()[0]["index"])[0]
        kp = out[:, :51].reshape(-1, 17, 3)
        xy = transform.to_source(np.stack([kp[..., 1], kp[..., 0]], -1) * 256).astype(np.float32)
        poses = Poses(xy, kp[..., 2].astype(np.float32), out[:, 55].astype(np.float32), "coco17")
        return Estimate(poses, {"invoke_ms": ms}, 1, "cpu")

    def close(self) -> None:
        pass


def _topdown(changes: dict[str, Any], landmark: Path | None = None,
             pipeline: str = "movenet-multipose") -> TopDownEstimator:
    """A registered pipeline with ``changes`` to its params, and another landmark file
    (a MoveNet .tflite: uint8 or float raw pixels, letterboxed) in place of its own."""
    m = get_pipeline(pipeline)
    assert m is not None
    params = replace(TopDownParams.from_dict(m.params), **changes)
    lm = open_engine(m.landmark, "cpu") if landmark is None else open_engine(
        landmark, "cpu", decoder="movenet", schema="coco17", resize="letterbox")
    return TopDownEstimator(open_engine(m.proposer, "cpu"), lm, params, m.name)


def thunder_file(given: Path | None) -> Path | None:
    """Coral's int8 Thunder when fetched, else ``given`` (a stand-in), else None."""
    from edgepose.models.registry import find_model_file, get_manifest

    return find_model_file(get_manifest("movenet-thunder")) or given


def _one_person_oks(est: Any, shared: Path) -> float:
    """Mean OKS of the top-scored pose on the images of both sets showing one person."""
    vals = []
    for s in SETS:
        root = shared / "data" / s
        coco = json.loads((root / "person_keypoints.json").read_text())
        for im in coco["images"]:
            anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
            if len(anns) != 1:
                continue
            gt = np.array(anns[0]["keypoints"], np.float64).reshape(17, 3)
            poses = est.estimate(load_rgb(root / "images" / im["file_name"])).poses
            if not len(poses):
                vals.append(0.0)
                continue
            top = int(np.argmax(poses.pose_scores))
            vals.append(float(oks(poses.xy[top], gt[:, :2], anns[0]["area"], gt[:, 2] > 0)))
    return float(np.mean(vals))


def _published_ms(r: Estimate, proposer: str, landmark: str) -> float:
    """The frame's invokes at their published Edge TPU times (a sleep overshoots them on
    a loaded machine)."""
    proposals = 1 if "proposer_invoke_ms" in r.timings else 0
    return proposals * EDGETPU_MS[proposer] + (r.invokes - proposals) * EDGETPU_MS[landmark]


def _standin_fps(pipeline: str, thunder: Path | None, people_images: dict[int, np.ndarray],
                 frames: int) -> dict[int, tuple[float, ...]]:
    """Per held image, means per frame: wall ms, the frame's own work in wall ms (wall less
    the invokes' sleeps as they happened and the stand-in's own output lookups), this
    process's CPU ms (all threads: OpenCV's parallel warps count once per core), invokes,
    people found and the invokes' published ms. Published invoke ms + own work ms is the
    frame with an accelerator on this machine."""
    out = {}
    m = get_pipeline(pipeline)
    assert m is not None
    for people, image in people_images.items():
        lm = open_engine(m.landmark, "cpu") if thunder is None else open_engine(
            thunder, "cpu", decoder="movenet", schema="coco17", resize="letterbox")
        engines = [EdgeTpuStandIn(open_engine(m.proposer, "cpu"), EDGETPU_MS[m.proposer]),
                   EdgeTpuStandIn(lm, EDGETPU_MS[m.landmark])]
        est = TopDownEstimator(*engines, TopDownParams.from_dict(m.params), m.name)
        for recording in (True, False):
            for e in engines:
                e.recording = recording
            est.reset()
            runs = []
            for i in range(frames):
                b0, s0 = (sum(e.bookkeeping_s for e in engines), sum(e.slept_s for e in engines))
                t0, c0 = time.perf_counter(), time.process_time()
                r = est.finish(est.invoke(est.prepare(image, i / 30)))
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                lookups = sum(e.bookkeeping_s for e in engines) - b0  # the stand-in's, not the Pi's
                slept = sum(e.slept_s for e in engines) - s0
                runs.append((wall * 1e3, (wall - slept - lookups) * 1e3, (cpu - lookups) * 1e3,
                             r.invokes, len(r.poses), _published_ms(r, m.proposer, m.landmark)))
        est.close()
        # means: proposal frames (every 5th) cost more and must count in their share
        out[people] = tuple(statistics.mean(col) for col in zip(*runs))
    return out


def main() -> None:
    from tools.evaluate import evaluate_coco

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", type=Path, help="a folder with float TFLite conversions (optional)")
    ap.add_argument("--thunder", type=Path, help="an int8 MoveNet Thunder standing in for Coral's (not fetched)")
    ap.add_argument("--frames", type=int, default=60, help="frames of each held image (stand-in cost)")
    ap.add_argument("--cost-only", action="store_true", help="only the stand-in cost")
    args = ap.parse_args()
    shared = require_shared()
    thunder = thunder_file(args.thunder)
    fast = "movenet-multipose-fast"
    candidates: list[tuple[str, Any]] = [
        ("fast", lambda: _topdown({}, pipeline=fast)), ("fast-before", lambda: _topdown(BEFORE, pipeline=fast)),
        ("posenet", lambda: open_estimator("posenet-mobilenet-v1-075-481x641", "cpu")),
        ("lightning", lambda: open_estimator("movenet-lightning", "cpu", crops=False))]
    if thunder is not None:
        candidates.insert(0, ("default", lambda: _topdown({}, thunder)))
    else:
        print("(Coral's movenet-thunder not fetched and no --thunder: default skipped)")
    for label, file in ARTIFACTS.items():
        path = next(iter(sorted(args.artifacts.rglob(file))), None) if args.artifacts else None
        if path is None:
            if args.artifacts:
                print(f"({file} not in {args.artifacts}: {label} skipped)")
            continue
        if label == "multipose-float":
            candidates.append((label, lambda path=path: MultiPoseFloat(path)))
        else:
            candidates.append((label, lambda path=path: _topdown({}, path)))
    if args.cost_only:
        candidates = []
    print(f"{'candidate':16} " + " ".join(f"{s + ' AP':>15} {'AR':>6}" for s in SETS) + f" {'1-person OKS':>13}")
    for label, make in candidates:
        est = make()
        cells = []
        for s in SETS:
            root = shared / "data" / s
            m = evaluate_coco([est], root / "person_keypoints.json", root / "images",
                              full_images=True)["models"][0]
            cells.append(f"{m['AP']:>15.3f} {m['AR']:>6.3f}")
        print(f"{label:16} " + " ".join(cells) + f" {_one_person_oks(est, shared):>13.3f}", flush=True)
        est.close()
    one = load_rgb(shared / "images" / "tfexamples_image1.png")
    couple = load_rgb(shared / "images" / "posenet_test_couple.jpg")
    images = {1: one, 2: couple, 4: np.concatenate([couple] * 2, axis=1),
              6: np.concatenate([couple] * 3, axis=1)}
    runs = [("movenet-multipose", thunder)] if thunder is not None else []
    for pipeline, landmark in runs + [(fast, None)]:
        print(f"\n{pipeline}, Edge TPU stand-in, {args.frames} frames held: people found, invokes and ms per frame")
        for people, (wall, own, cpu, invokes, found_people, inv_ms) in _standin_fps(pipeline, landmark, images,
                                                                                    args.frames).items():
            calm = inv_ms + own
            print(f"  {people} people: found {found_people:.0f}, {invokes:.2f} invokes; wall {wall:.1f} ms/frame "
                  f"({1000 / wall:.0f} frames/s); published invokes {inv_ms:.1f} + own work {own:.1f} = "
                  f"{calm:.1f} ms ({1000 / calm:.0f} frames/s with an accelerator); process CPU {cpu:.1f} ms")

if __name__ == "__main__":
    main()
