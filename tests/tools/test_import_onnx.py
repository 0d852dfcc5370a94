"""An NCHW ONNX pose network (Simple-Baselines-style, ImageNet-normalised input) built with
the ``onnx`` package, taken through our tools end to end: import -> int8 quantization with
real images -> check; the int8 model, run by edgepose's own engine, agrees with
onnxruntime's float output on other real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepose.core.imageio import list_images, read_image
from edgepose.core.preprocess import resize
from edgepose.models.manifest import load_manifest
from tests.conftest import shared_path
from tests.tools.onnx_models import IMAGENET_MEAN, IMAGENET_STD, simple_baselines_onnx

pytestmark = pytest.mark.slow
SIZE = (128, 96)
# Stated bound: per image, the int8 heatmaps (engine, dequantized) against onnxruntime's
# float heatmaps, cosine similarity over the whole output. Measured on 18 images: min 0.9991,
# mean 0.9996 (a BGR build: 0.9995 against a BGR-fed reference, 0.959 against an RGB-fed one).
MIN_COSINE = 0.98


@pytest.fixture(scope="module")
def sb_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    return simple_baselines_onnx(tmp_path_factory.mktemp("onnx") / "sb.onnx", SIZE)


def _quantize(model: Path, folder: Path, channels: str) -> object:
    from tools.quantize import quantize

    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if channels == "bgr":  # mean/std are given in the model's channel order
        mean, std = mean[::-1], std[::-1]
    return quantize(model, shared_path("data", "limbs12_dev", "images"), folder / f"sb_{channels}_int8.tflite",
                    num_samples=9, held_out=3, decoder="heatmap", schema="coco17", progress=False,
                    mean=mean, std=std, channels=channels)


@pytest.fixture(scope="module")
def quantized(sb_onnx: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return _quantize(sb_onnx, tmp_path_factory.mktemp("q"), "rgb")


def _eval_frames() -> list[np.ndarray]:
    """Real images the model was not calibrated on."""
    paths = list_images(shared_path("data", "coco17_dev", "images")) + list_images(shared_path("images"))
    return [read_image(p) for p in paths]


def _cosines(model_path: Path, onnx_path: Path, feed_bgr: bool) -> list[float]:
    """Per image: cosine of the int8 engine's output with onnxruntime's float output on the
    same resized frame, normalised with ImageNet mean/std (fed as BGR when ``feed_bgr``)."""
    import onnxruntime as ort

    from edgepose.inference.engine import open_engine

    engine = open_engine(model_path, "cpu")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    mean, std = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)
    if feed_bgr:
        mean, std = mean[::-1], std[::-1]
    out = []
    for frame in _eval_frames():
        tensor, _ = engine.preprocess(frame)
        (q,) = engine.invoke(tensor)
        got = (q.data.astype(np.float32) - q.zero_point) * q.scale
        resized, _ = resize(frame, SIZE, "letterbox")
        x = resized[..., ::-1] if feed_bgr else resized
        x = ((x.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
        (ref,) = sess.run(None, {"image": x})
        ref = ref.transpose(0, 2, 3, 1)  # NCHW heatmaps -> the imported graph's NHWC
        assert got.shape == ref.shape == (1, SIZE[0] // 4, SIZE[1] // 4, 17)
        out.append(float(np.dot(got.ravel(), ref.ravel()) / (np.linalg.norm(got) * np.linalg.norm(ref))))
    return out


def test_onnx_nchw_int8_agrees_with_onnxruntime(quantized, sb_onnx: Path) -> None:  # type: ignore[no-untyped-def]
    cos = _cosines(quantized.model_path, sb_onnx, feed_bgr=False)
    print(f"int8 vs onnxruntime float cosine: min {min(cos):.4f}, mean {np.mean(cos):.4f} over {len(cos)} images")
    assert len(cos) >= 15 and min(cos) >= MIN_COSINE, cos


def test_manifest_carries_input_semantics_and_check_maps(quantized) -> None:  # type: ignore[no-untyped-def]
    from tools.check import check_model

    m = load_manifest(quantized.manifest_path)
    assert m.mean == pytest.approx(IMAGENET_MEAN) and m.std == pytest.approx(IMAGENET_STD)
    assert (m.channels, m.input_size, m.decoder) == ("rgb", SIZE, "heatmap")
    assert quantized.report["input"]["source_layout"] == "nchw"
    report = check_model(quantized.model_path)
    assert report.status == "mapped", [p for p in report.problems]
    versions = {(op.name, op.version) for op in report.ops}
    # ConvTranspose + BN + ReLU: without the rewrite TF 2.21 emits TRANSPOSE_CONV v4 (rejected).
    assert ("TRANSPOSE_CONV", 2) in versions and not any(n == "TRANSPOSE_CONV" and v > 3 for n, v in versions)
    assert not any(n == "TRANSPOSE" for n, _ in versions)  # NCHW handled without transposes


def test_bgr_model_is_calibrated_and_fed_bgr(sb_onnx: Path, tmp_path: Path) -> None:
    r = _quantize(sb_onnx, tmp_path, "bgr")
    assert load_manifest(r.manifest_path).channels == "bgr"  # type: ignore[attr-defined]
    as_bgr = _cosines(r.model_path, sb_onnx, feed_bgr=True)  # type: ignore[attr-defined]
    as_rgb = _cosines(r.model_path, sb_onnx, feed_bgr=False)  # type: ignore[attr-defined]
    print(f"bgr model: cosine with a BGR-fed reference {np.mean(as_bgr):.4f}, RGB-fed {np.mean(as_rgb):.4f}")
    assert min(as_bgr) >= MIN_COSINE
    assert np.mean(as_rgb) < np.mean(as_bgr) - 0.01  # the runtime really swapped the channels


def test_cli_quantize_then_check(sb_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same through `edgepose-tools quantize` and `check`, as a user types it."""
    from tools.cli import main

    out = tmp_path / "sb_int8.tflite"
    argv = ["quantize", str(sb_onnx), "--representative", str(shared_path("data", "limbs12_dev", "images")),
            "--samples", "9", "--held-out", "3", "--decoder", "heatmap", "--schema", "coco17", "--no-progress",
            "--output", str(out), "--mean", *map(str, IMAGENET_MEAN), "--std", *map(str, IMAGENET_STD),
            "--channels", "rgb", "--layout", "nchw"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "output heatmaps [1,32,24,17]" in printed, printed
    m = load_manifest(out.with_suffix(".toml"))
    assert m.mean == pytest.approx(IMAGENET_MEAN) and m.std == pytest.approx(IMAGENET_STD)
    assert "NCHW input in the original" in m.description
    assert main(["check", str(out)]) == 0
    assert "verdict: mapped" in capsys.readouterr().out
