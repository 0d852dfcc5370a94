"""TF.js models through `edgepose-tools quantize`: MoveNet Lightning v4 (its post-processing tail
kept float, as in Coral's int8 build) agrees with Coral's int8 Lightning on coco17_dev person
crops; MultiPose and CenterNet cut at their heads map fully to the Edge TPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_path
from tests.tools.test_import_tfjs import CENTERNET_HEADS, MULTIPOSE_HEADS

OKS_TOLERANCE = 0.03  # issue 13: mean OKS within 0.03 of Coral's int8 Lightning


@pytest.fixture(scope="session")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each TF.js model quantized once per session (calibration: frames of one shared video)."""
    from tools.quantize import quantize

    out = tmp_path_factory.mktemp("tfjs_int8")
    calib = _calibration_folder(tmp_path_factory.mktemp("calib"))
    cache: dict[str, Any] = {}
    jobs = {
        "movenet-lightning": dict(num_samples=91, decoder="movenet", import_options=None),
        "movenet-multipose": dict(num_samples=8, decoder="multipose",
                                  import_options={"outputs": MULTIPOSE_HEADS, "input_size": (256, 256)}),
    }

    def get(name: str) -> Any:
        if name == "centernet" and name not in cache:  # a detector: no pose decoder for the report,
            cache[name] = _int8_only(out, calib, name, {"outputs": CENTERNET_HEADS})  # so the int8 steps only
        if name not in cache:
            job: dict[str, Any] = dict(jobs[name])
            cache[name] = quantize(shared_path("models", "tfjs", name), calib, out / f"{name}_int8.tflite",
                                   schema="coco17", held_out=4, progress=False, **job)
        return cache[name]
    return get


def _calibration_folder(folder: Path, per_video: int = 12) -> Path:
    """The people in ../shared/images and frames spread evenly over each shared video (no
    coco17_dev image: that set is the one the test measures on)."""
    from PIL import Image

    from edgepose.core.imageio import IMAGE_SUFFIXES
    from tools.quantize import iter_source_frames

    for p in sorted(shared_path("images").iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            (folder / p.name).symlink_to(p)
    for video in sorted(shared_path("videos").glob("*.mp4")):
        for i, frame in enumerate(iter_source_frames(video, per_video)):
            Image.fromarray(frame).save(folder / f"{video.stem}_{i:02d}.png")
    return folder


def _int8_only(out: Path, calib: Path, name: str, options: dict[str, Any]) -> Path:
    from tools.quantize import _check_int8, _import, _int8_convert, load_representative

    model = shared_path("models", "tfjs", name)
    imported = _import(model, **options)
    size = imported.input.size
    frames = load_representative(calib, 8, size, progress=False)
    data, tail = _int8_convert(imported, frames, "uint8", model)
    _check_int8(data, "uint8", model, tail)
    assert not tail
    path = out / f"{name}_int8.tflite"
    path.write_bytes(data)
    return path


@pytest.mark.slow
def test_lightning_int8_keeps_a_float_tail_and_agrees_with_corals_int8(quantized: Any) -> None:
    from edgepose.estimators.factory import open_estimator
    from tools.check import check_model
    from tools.evaluate import evaluate_coco

    r = quantized("movenet-lightning")
    assert r.report["float_tail"] is True
    report = check_model(r.model_path)
    assert report.status == "cpu-tail"  # the network maps; argmax/gather run on the CPU, as Coral's build
    first_cpu = report.ops_on("cpu")[0].name
    assert first_cpu in ("DEQUANTIZE", "ARG_MAX"), first_cpu
    ann = shared_path("data", "coco17_dev", "person_keypoints.json")
    engines = [open_estimator("movenet-lightning", device="cpu"), open_estimator(str(r.model_path), device="cpu")]
    try:
        res = evaluate_coco(engines, ann, ann.parent / "images")
    finally:
        for e in engines:
            e.close()
    coral, ours = (m["mean_oks"] for m in res["models"])
    assert coral > 0.7  # ground-truth crops of real people: the comparison means something
    assert abs(ours - coral) <= OKS_TOLERANCE, (ours, coral)


@pytest.mark.slow
@pytest.mark.parametrize("name, n_outputs", [("movenet-multipose", 6), ("centernet", 2)])
def test_heads_cut_from_tfjs_graphs_map_fully_to_the_edge_tpu(quantized: Any, name: str, n_outputs: int) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from tools.check import check_model

    r = quantized(name)
    path = r if isinstance(r, Path) else r.model_path
    report = check_model(path)
    assert report.status == "mapped", report.problems[:3]
    assert len(report.ops) > 50
    outputs = Interpreter(model_path=str(path)).get_output_details()
    assert len(outputs) == n_outputs and all(o["dtype"].__name__ == "uint8" for o in outputs)


def test_quantize_cli_parses_outputs_and_input_size() -> None:
    from tools.cli import build_parser

    args = build_parser().parse_args(["quantize", "m", "--representative", "r", "--outputs", "a/b, c",
                                      "--input-size", "256x192", "--clip", "a/b=-2:2.5, c=0:1"])
    assert args.outputs == ["a/b", "c"] and args.input_size == (256, 192)
    assert args.clip == {"a/b": (-2.0, 2.5), "c": (0.0, 1.0)}
