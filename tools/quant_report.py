"""How much int8 costs: float vs int8 outputs and keypoints on held-out images.

Both models are run with the LiteRT interpreter (``ai_edge_litert``) on the same
held-out images; the report holds per-output errors (mean abs, max abs, relative to the
float output's mean magnitude) and PCK@0.05 of the int8 keypoints against the float
keypoints, normalised by the larger input side. A PNG figure shows both.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from edgepose.decoders.base import OutputTensor
from edgepose.core.preprocess import Transform
from tools.metrics import pck

log = logging.getLogger(__name__)
PCK_ALPHA = 0.05


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
        outputs.append({"name": name, "shape": list(arr.shape[2:]), "mean_abs": float(diff.mean()),
                        "max_abs": float(diff.max()), "relative": float(diff.mean() / magnitude),
                        "float_range": [float(arr[:, 0].min()), float(arr[:, 0].max())]})
    report: dict[str, Any] = {"num_images": len(images), "outputs": outputs,
                              "input_quantization": list(q_run.input_quantization)}
    if f_kp:
        fk, qk = np.stack(f_kp), np.stack(q_kp)
        dist = np.linalg.norm(fk - qk, axis=-1)
        report["keypoints"] = {
            f"pck@{PCK_ALPHA}": pck(qk, fk, max(input_size), PCK_ALPHA),
            "normalised_by": max(input_size),
            "mean_distance_px": float(dist.mean()),
            "per_keypoint_pck": [float(np.mean(dist[:, k] < PCK_ALPHA * max(input_size))) for k in range(dist.shape[1])],
            "distances_px": dist.round(3).tolist(),
        }
    return report


def write_report(report: dict[str, Any], json_path: Path, png_path: Path) -> None:
    """Write the JSON report and its figure (per-output error bars, keypoint distances)."""
    json_path.write_text(json.dumps(report, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    outs = report["outputs"]
    names = [f"{i}: {o['shape']}" for i, o in enumerate(outs)]
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
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
