"""How much int8 costs: float vs int8 outputs and keypoints on held-out images.

Both models are run with the LiteRT interpreter (``ai_edge_litert``) on the same
held-out images; the report holds per-output errors (mean abs, max abs, relative to the
float output's mean magnitude; each output named by its role for the decoder, e.g.
"heatmaps [1,16,16,17]"), PCK@0.05 of the int8 keypoints against the float keypoints,
normalised by the larger input side, and the verdict: the int8 model is **usable** when
that agreement is at least ``USABLE_PCK`` (0.9: nine in ten int8 keypoints land within 5 %
of the input size of the float model's). Per-layer error comes from TensorFlow's
``tf.lite.experimental.QuantizationDebugger`` (RMSE / scale of each quantized tensor:
about 0.29 is rounding alone; far above 1 means that layer loses information). A PNG
figure shows the errors; an overlay image draws the float and the int8 poses on a
held-out image with edgepose's own renderer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.preprocess import Transform
from edgepose.decoders.base import OutputTensor
from tools.metrics import pck

log = logging.getLogger(__name__)
PCK_ALPHA = 0.05
USABLE_PCK = 0.9  # int8 vs float keypoint agreement (PCK@PCK_ALPHA) for the verdict "usable"
WORST_LAYERS = 5


class TfliteRunner:
    """A .tflite model (bytes) with one image input; ``run(float_batch)`` -> OutputTensors.

    The float batch is the model's float input (after mean/std); it is quantized with
    the input tensor's own scale/zero point when the input is integer.
    """

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_content=model)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self.outputs = sorted(self._interp.get_output_details(), key=lambda d: d["name"])

    @property
    def input_quantization(self) -> tuple[float, int]:
        scale, zero = self._in.get("quantization", (0.0, 0))
        return float(scale), int(zero)

    def run(self, x: npt.NDArray[np.float32]) -> list[OutputTensor]:
        dt = np.dtype(self._in["dtype"])
        if dt.kind != "f":
            scale, zero = self.input_quantization
            info = np.iinfo(dt)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self._interp.set_tensor(self._in["index"], x.astype(dt))
        self._interp.invoke()
        return [OutputTensor(self._interp.get_tensor(d["index"]).copy(), float(d["quantization"][0]),
                             int(d["quantization"][1]), d["name"]) for d in self.outputs]


def keypoints_from(outputs: Sequence[OutputTensor], input_size: tuple[int, int],
                   decoder: str, decoder_params: dict[str, Any] | None = None) -> npt.NDArray[np.float32] | None:
    """(K, 2) keypoints in input pixels of the first pose (the runtime's own decoder), or None."""
    from edgepose.decoders import get_decoder

    poses = get_decoder(decoder)(list(outputs), Transform.identity(*input_size), **(decoder_params or {}))
    return np.asarray(poses.xy[0], np.float32) if len(poses) else None


def output_roles(shapes: Sequence[tuple[int, ...]], decoder: str, schema: str) -> list[str]:
    """A readable name per output from its shape and what the decoder reads from it
    ("heatmaps [1,16,16,17]", "keypoints (y, x, score) [1,1,17,3]"), not the graph's tensor name."""
    from edgepose.core.schemas import get_schema

    info = get_schema(schema)
    k, edges = info.num_keypoints, len(info.edges)
    roles = []
    for i, shape in enumerate(shapes):
        c = shape[-1] if shape else 0
        role = f"output {i}"
        if decoder == "movenet" and len(shape) == 4 and shape[-2:] == (k, 3):
            role = "keypoints (y, x, score)"
        elif len(shape) == 4 and c == k:
            role = "heatmaps"
        elif decoder.startswith("posenet") and len(shape) == 4 and c == 2 * k:
            role = "short offsets"
        elif decoder.startswith("posenet") and len(shape) == 4 and c == 4 * edges:
            role = "displacements"
        roles.append(f"{role} [{','.join(str(d) for d in shape)}]")
    return [r if roles.count(r) == 1 else f"{r} #{i}" for i, r in enumerate(roles)]


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Whether the int8 model is usable: its keypoints against the float model's."""
    kp = report.get("keypoints")
    if not kp:
        return {"usable": None, "threshold": USABLE_PCK,
                "text": "unknown: no pose decoded on the held-out images by both models; judge by the output errors"}
    agree = float(kp[f"pck@{PCK_ALPHA}"])
    usable = agree >= USABLE_PCK
    word = "usable" if usable else "NOT usable"
    cmp = ">=" if usable else "<"
    return {"usable": usable, "threshold": USABLE_PCK, "pck": agree,
            "text": f"{word}: {agree:.1%} of int8 keypoints within {PCK_ALPHA:g} x input size of the float "
                    f"model's (PCK@{PCK_ALPHA:g} {agree:.3f} {cmp} {USABLE_PCK})"}


def compare(float_model: bytes, int8_model: bytes, images: Sequence[npt.NDArray[np.float32]],
            input_size: tuple[int, int], decoder: str,
            decoder_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run both models on ``images`` (float input batches) and measure the int8 error."""
    f_run, q_run = TfliteRunner(float_model), TfliteRunner(int8_model)
    per_out: dict[str, list[npt.NDArray[np.float32]]] = {}
    f_kp, q_kp = [], []
    for x in images:
        fo, qo = f_run.run(x), q_run.run(x)
        if len(fo) != len(qo):
            raise ValueError(f"float model has {len(fo)} outputs, int8 model {len(qo)}")
        for a, b in zip(fo, qo):
            per_out.setdefault(a.name, []).append(np.stack([a.dequantize(), b.dequantize().reshape(a.shape)]))
        kf = keypoints_from(fo, input_size, decoder, decoder_params)
        kq = keypoints_from(qo, input_size, decoder, decoder_params)
        if kf is not None and kq is not None:
            f_kp.append(kf)
            q_kp.append(kq)
    outputs = []
    for name, pairs in per_out.items():
        arr = np.stack(pairs)  # (n, 2, ...)
        diff = np.abs(arr[:, 0] - arr[:, 1])
        magnitude = float(np.mean(np.abs(arr[:, 0]))) or 1.0
        outputs.append({"tensor": name, "shape": list(arr.shape[2:]), "mean_abs": float(diff.mean()),
                        "max_abs": float(diff.max()), "relative": float(diff.mean() / magnitude),
                        "float_range": [float(arr[:, 0].min()), float(arr[:, 0].max())]})
    schema = (decoder_params or {}).get("schema", "coco17")
    for o, role in zip(outputs, output_roles([tuple(o["shape"]) for o in outputs], decoder, schema)):
        o["name"] = role
    report: dict[str, Any] = {"num_images": len(images), "outputs": outputs,
                              "input_quantization": list(q_run.input_quantization)}
    if f_kp:
        fk, qk = np.stack(f_kp), np.stack(q_kp)
        dist = np.linalg.norm(fk - qk, axis=-1)
        report["keypoints"] = {
            f"pck@{PCK_ALPHA}": pck(qk, fk, max(input_size), PCK_ALPHA),
            "normalised_by": max(input_size),
            "mean_distance_px": float(dist.mean()),
            "per_keypoint_pck": [float(np.mean(dist[:, k] < PCK_ALPHA * max(input_size)))
                                 for k in range(dist.shape[1])],
            "distances_px": dist.round(3).tolist(),
        }
    report["verdict"] = verdict(report)
    return report


def layer_errors(make_converter: Callable[[], Any], calibration: Sequence[npt.NDArray[np.float32]],
                 images: Sequence[npt.NDArray[np.float32]]) -> dict[str, Any]:
    """Per-layer int8 error on ``images`` with TensorFlow's QuantizationDebugger (the model
    calibrated on ``calibration`` as the int8 build is): RMSE / scale of each quantized
    tensor, the worst ``WORST_LAYERS`` listed first. A debugger failure is reported, not raised."""
    import contextlib
    import csv
    import io
    import warnings

    try:
        import tensorflow as tf

        conv = make_converter()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x] for x in calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        buf = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=conv, debug_dataset=lambda: ([x] for x in images))
            debugger.run()
            debugger.layer_statistics_dump(buf)
    except Exception as err:  # the debugger supports fewer graphs than the converter
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        log.warning("per-layer error not measured: %s", why)
        return {"error": why, "layers": [], "worst": []}
    layers = []
    for row in csv.DictReader(io.StringIO(buf.getvalue())):
        scale, mse = float(row["scale"] or 0), float(row["mean_squared_error"] or 0)
        layers.append({"op": row["op_name"], "tensor": row["tensor_name"], "scale": scale,
                       "rmse": float(np.sqrt(mse)), "rmse_scale": float(np.sqrt(mse) / scale) if scale else 0.0,
                       "max_abs_error": float(row["max_abs_error"] or 0)})
    worst = sorted(layers, key=lambda r: -r["rmse_scale"])[:WORST_LAYERS]
    return {"metric": "RMSE / scale (about 0.29 is rounding alone)", "layers": layers, "worst": worst}


def overlay(float_model: bytes, int8_model: bytes, image: npt.NDArray[np.float32], input_size: tuple[int, int],
            decoder: str, decoder_params: dict[str, Any] | None, mean: Any, std: Any, path: Path,
            min_side: int = 320) -> Path:
    """Float (left) and int8 (right) poses drawn by edgepose's renderer on one held-out
    image (the model's float input, un-normalised), enlarged to ``min_side`` px."""
    import cv2

    from edgepose.core.imageio import write_image
    from edgepose.decoders import get_decoder
    from edgepose.render import annotate

    m = np.asarray(0.0 if mean is None else mean, np.float32)
    s = np.asarray(1.0 if std is None else std, np.float32)
    picture = np.clip(np.round(image[0] * s + m), 0, 255).astype(np.uint8)
    factor = max(1, -(-min_side // min(input_size)))
    big = np.ascontiguousarray(picture.repeat(factor, axis=0).repeat(factor, axis=1))
    panels = []
    for label, model in (("float", float_model), ("int8", int8_model)):
        poses = get_decoder(decoder)(TfliteRunner(model).run(image), Transform.identity(*input_size),
                                     **(decoder_params or {}))
        poses.xy = poses.xy * factor  # the enlarged picture's pixels
        panel = annotate(big, poses, keypoint_threshold=0.0)
        cv2.putText(panel, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        panels.append(panel)
    return write_image(path, np.concatenate(panels, axis=1))


def format_lines(report: dict[str, Any]) -> list[str]:
    """The report's per-output and worst per-layer errors and its verdict, as printed lines."""
    lines = []
    for o in report["outputs"]:
        lines.append(f"  output {o['name']}: mean abs {o['mean_abs']:.4g}, max abs {o['max_abs']:.4g}, "
                     f"relative {o['relative']:.3%}")
    layers = report.get("layers", {})
    for lay in layers.get("worst", []):
        lines.append(f"  layer {lay['op']} {lay['tensor'][:60]}: RMSE/scale {lay['rmse_scale']:.3f}")
    if layers.get("error"):
        lines.append(f"  per-layer error not measured: {layers['error']}")
    lines.append(f"  verdict: {report['verdict']['text']}")
    return lines


def write_report(report: dict[str, Any], json_path: Path, png_path: Path) -> None:
    """Write the JSON report and its figure (per-output error bars, keypoint distances,
    the worst layers' RMSE / scale, the verdict as the title)."""
    json_path.write_text(json.dumps(report, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    outs = report["outputs"]
    names = [o.get("name", f"output {i}") for i, o in enumerate(outs)]
    axes[0].bar(names, [o["mean_abs"] for o in outs], label="mean |float - int8|")
    axes[0].plot(names, [o["max_abs"] for o in outs], "rx", label="max")
    axes[0].set_title("output error (dequantized)")
    axes[0].tick_params(axis="x", labelrotation=30)
    axes[0].legend()
    kp = report.get("keypoints")
    if kp:
        d = np.asarray(kp["distances_px"]).ravel()
        axes[1].hist(d, bins=20)
        axes[1].axvline(PCK_ALPHA * kp["normalised_by"], color="r", label=f"PCK@{PCK_ALPHA} threshold")
        axes[1].set_title(f"int8 vs float keypoints: PCK@{PCK_ALPHA} = {kp[f'pck@{PCK_ALPHA}']:.3f}")
        axes[1].set_xlabel("distance (input px)")
        axes[1].legend()
    else:
        axes[1].text(0.5, 0.5, "no keypoints decoded", ha="center")
    worst = report.get("layers", {}).get("worst", [])
    if worst:
        labels = [f"{w['op']} {w['tensor'][-24:]}" for w in worst]
        axes[2].barh(labels[::-1], [w["rmse_scale"] for w in worst][::-1])
        axes[2].axvline(0.289, color="g", label="rounding alone")
        axes[2].set_title("worst layers: RMSE / scale")
        axes[2].legend()
    else:
        axes[2].text(0.5, 0.5, "per-layer error not measured", ha="center")
    if "verdict" in report:
        fig.suptitle(f"int8 {report['verdict']['text']}")
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
