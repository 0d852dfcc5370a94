"""Median cost of the PoseNet multi-pose decoder on real model outputs, and (optionally)
an exact comparison against another implementation of it.

    python benchmarks/bench_posenet_decode.py [--repeat 200] [--reference OLD.py]

Runs Coral's three PoseNet models (353x481, 481x641, 721x1281) on the people images in
../shared/images and a few frames of each ../shared/videos/*.mp4 (letterboxed), then
times ``decode_multi`` with max_detections=10, score_threshold=0.2, nms_radius=20:
median wall and CPU (``time.process_time``) ms, for posenet_test_couple.jpg and over
all frames. The machine's load average is printed: the timings are only comparable at
similar load.

``--reference`` names a file holding another ``decode_multi`` (e.g. a saved copy of the
previous version). Its output must equal this one on every frame, with both those
options and Coral's (max_detections=20, score_threshold=0.2, nms_radius=10): same pose
count, keypoints within 1e-3 px, scores within 1e-5. It is timed alongside, interleaved.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import time
from types import ModuleType
from typing import Any

import numpy as np
from _common import load_rgb, require_shared

IMAGES = (
    "posenet_test_couple.jpg", "coral_grace_hopper.bmp", "coral_posenet_test_image.bmp",
    "coral_squat.bmp", "skimage_astronaut.png", "tfexamples_image1.png",
    "tfexamples_image2.jpeg", "tfexamples_image3.jpeg", "ultralytics_bus.jpg",
    "ultralytics_zidane.jpg",
)
RESOLUTIONS = ((353, 481), (481, 641), (721, 1281))
OPTIONS = (
    dict(max_detections=10, score_threshold=0.2, nms_radius=20),
    dict(max_detections=20, score_threshold=0.2, nms_radius=10),  # Coral's
)


def frames(shared: Any, per_video: int) -> list[tuple[str, np.ndarray]]:
    import cv2

    out = [(name, load_rgb(shared / "images" / name)) for name in IMAGES]
    for path in sorted(glob.glob(str(shared / "videos" / "*.mp4"))):
        cap = cv2.VideoCapture(path)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in np.linspace(0, max(count - 1, 0), per_video).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, bgr = cap.read()
            if ok:
                out.append((f"{os.path.basename(path)}#{i}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        cap.release()
    return out


def model_outputs(path: str, images: list[tuple[str, np.ndarray]], size: tuple[int, int]) -> list:
    from ai_edge_litert.interpreter import Interpreter

    from edgepose.core.preprocess import resize
    from edgepose.decoders.base import OutputTensor

    interp = Interpreter(path)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = []
    for name, image in images:
        x, transform = resize(image, size, "letterbox")
        interp.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interp.invoke()
        tensors = []
        for d in interp.get_output_details():
            scale, zero = d["quantization"]
            data = interp.get_tensor(d["index"]).copy()
            tensors.append(OutputTensor(data, scale, zero, d["name"]))
        out.append((name, tensors, transform))
    return out


def load_module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_decoder", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(a: Any, b: Any) -> str | None:
    """None when poses ``a`` and ``b`` are the same (see the module docstring)."""
    if len(a.pose_scores) != len(b.pose_scores):
        return f"{len(a.pose_scores)} vs {len(b.pose_scores)} poses"
    if not len(a.pose_scores):
        return None
    dxy = float(np.abs(a.xy - b.xy).max())
    ds = float(max(np.abs(a.scores - b.scores).max(), np.abs(a.pose_scores - b.pose_scores).max()))
    return None if dxy < 1e-3 and ds < 1e-5 else f"max |dxy| {dxy:.2e} px, max |dscore| {ds:.2e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200, help="timed calls per frame")
    ap.add_argument("--per-video", type=int, default=3, help="frames taken from each video")
    ap.add_argument("--reference", help="file with another decode_multi to compare and time")
    args = ap.parse_args()
    shared = require_shared()

    from edgepose.decoders import posenet_multi

    decoders = {"current": posenet_multi.decode_multi}
    if args.reference:
        decoders = {"reference": load_module(args.reference).decode_multi, **decoders}
    images = frames(shared, args.per_video)
    print(f"{len(images)} frames; load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    checked = failed = 0
    for h, w in RESOLUTIONS:
        model = str(shared / "models" / "coral" / f"posenet_mobilenet_v1_075_{h}_{w}_quant.tflite")
        runs = model_outputs(model, images, (h, w))
        if args.reference:
            for name, outputs, transform in runs:
                for opts in OPTIONS:
                    diff = compare(*(d(outputs, transform, **opts) for d in decoders.values()))
                    checked += 1
                    if diff:
                        failed += 1
                        print(f"  DIFFERENT {h}x{w} {name} {opts}: {diff}")
        wall: dict[str, list[float]] = {k: [] for k in decoders}
        cpu: dict[str, list[float]] = {k: [] for k in decoders}
        couple: dict[str, list[float]] = {k: [] for k in decoders}
        for name, outputs, transform in runs:
            for _ in range(args.repeat):
                for key, decode in decoders.items():  # interleaved: same conditions
                    t, c = time.perf_counter(), time.process_time()
                    decode(outputs, transform, **OPTIONS[0])
                    dt, dc = time.perf_counter() - t, time.process_time() - c
                    wall[key].append(dt)
                    cpu[key].append(dc)
                    if name == IMAGES[0]:
                        couple[key].append(dt)
        for key in decoders:
            print(f"{h}x{w} {key:9s}  couple {np.median(couple[key]) * 1e3:6.3f} ms   "
                  f"all frames {np.median(wall[key]) * 1e3:6.3f} ms "
                  f"(cpu {np.median(cpu[key]) * 1e3:6.3f})")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.reference:
        print(f"equality: {checked - failed}/{checked} frame x option runs identical")


if __name__ == "__main__":
    main()
