from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, DeviceError, ModelError
from edgepose.core.schemas import Coco
from edgepose.inference.engine import (
    edgetpu_library,
    interpreter_module,
    load_edgetpu_delegate,
    open_engine,
    parse_device,
)
from edgepose.models.tflite_info import read_model_info
from tests.conftest import load_rgb, shared_path

CORAL = ("models", "coral")


def _reference(name: str) -> np.ndarray:
    """Coral's reference CSV as (17, 3): x, y (normalised), score."""
    with open(shared_path(*CORAL, name)) as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r["keypoint_x"]), float(r["keypoint_y"]), float(r["keypoint_score"])] for r in rows])


def test_edgetpu_model_is_recognised_from_the_flatbuffer() -> None:
    assert read_model_info(shared_path(*CORAL, "movenet_single_pose_lightning_ptq_edgetpu.tflite")).edgetpu
    assert not read_model_info(shared_path(*CORAL, "movenet_single_pose_lightning_ptq.tflite")).edgetpu


@pytest.mark.parametrize("system,lib", [("Linux", "libedgetpu.so.1"), ("Darwin", "libedgetpu.1.dylib"),
                                        ("Windows", "edgetpu.dll")])
def test_library_name_per_os(monkeypatch: pytest.MonkeyPatch, system: str, lib: str) -> None:
    monkeypatch.setattr("platform.system", lambda: system)
    assert edgetpu_library() == lib


def test_fake_loader_missing_library_and_missing_device() -> None:
    calls = []

    def missing_lib(lib: str, options: dict) -> object:
        calls.append((lib, options))
        raise OSError(f"{lib}: cannot open shared object file: No such file or directory")

    with pytest.raises(DeviceError) as err:
        load_edgetpu_delegate("usb", loader=missing_lib)
    msg = str(err.value)
    assert "libedgetpu.so.1" in msg and "libedgetpu1-std" in msg and "\n" not in msg
    assert calls == [("libedgetpu.so.1", {"device": "usb"})]

    def no_device(lib: str, options: dict) -> object:
        raise ValueError("Failed to load delegate from libedgetpu.so.1")

    with pytest.raises(DeviceError, match="found no device ':1'.*USB 3"):
        load_edgetpu_delegate(":1", loader=no_device)

    sentinel = object()
    assert load_edgetpu_delegate(None, loader=lambda lib, opts: sentinel) is sentinel


@pytest.mark.parametrize("spec,expected", [("auto", ("auto", None)), ("cpu", ("cpu", None)),
                                           ("edgetpu", ("edgetpu", None)), ("usb", ("edgetpu", "usb")),
                                           (":0", ("edgetpu", ":0")), ("pci:1", ("edgetpu", "pci:1"))])
def test_parse_device(spec: str, expected: tuple) -> None:
    assert parse_device(spec) == expected


@pytest.mark.parametrize("spec", ["gpu", "usb:abc", "usb:", ":", ":x", "pci:-1", ""])
def test_parse_device_rejects_unknown(spec: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown device '{spec}'"):
        parse_device(spec)


def test_edgetpu_without_runtime_is_a_device_error(tmp_path: Path) -> None:
    """The real load_delegate, asked for a libedgetpu that is not there (so the test does
    not depend on whether this machine has the runtime and an accelerator)."""
    shared_path(*CORAL)

    def missing_runtime(lib: str, options: dict) -> object:
        return interpreter_module().load_delegate(str(tmp_path / lib), options)

    with pytest.raises(DeviceError, match="libedgetpu.*could not be loaded"):
        open_engine("movenet-lightning-edgetpu", "edgetpu", delegate_loader=missing_runtime)


def test_auto_falls_back_to_cpu_twin_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    shared_path(*CORAL)

    def no_device(lib: str, options: dict) -> object:
        raise ValueError("no device")

    with caplog.at_level(logging.WARNING):
        eng = open_engine("movenet-lightning-edgetpu", "auto", delegate_loader=no_device)
    assert eng.device == "cpu" and eng.name == "movenet-lightning"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no Edge TPU" in warnings[0].getMessage()


def test_cpu_device_swaps_in_the_cpu_twin() -> None:
    shared_path(*CORAL)
    eng = open_engine("movenet-lightning-edgetpu", "cpu")
    assert eng.device == "cpu" and eng.name == "movenet-lightning"


def test_edgetpu_model_by_path_without_twin_cannot_run_on_cpu(tmp_path: Path) -> None:
    link = tmp_path / "x_edgetpu.tflite"
    link.symlink_to(shared_path(*CORAL, "movenet_single_pose_lightning_ptq_edgetpu.tflite"))
    with pytest.raises(ModelError, match="no cpu_twin"):
        open_engine(link, "cpu", decoder="movenet", schema="coco17")


def coral_input(image_name: str, size: int = 192) -> np.ndarray:
    """The image as Coral's MoveNet example fed it: PIL LANCZOS, stretched to the input."""
    from PIL import Image

    with Image.open(shared_path("images", image_name)) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.LANCZOS))


def _movenet_normalised(image_name: str, model: str = "movenet-lightning") -> np.ndarray:
    """Keypoints normalised to the input Coral used (identity transform at 192x192)."""
    device = "edgetpu" if model.endswith("edgetpu") else "cpu"
    poses = open_engine(model, device).infer(coral_input(image_name))
    assert len(poses) == 1
    return np.column_stack([poses.xy[0] / 192.0, poses.scores[0]])


def test_movenet_matches_coral_reference_on_squat() -> None:
    """Coral's reference for the CPU model, same input, tolerance 0.03 in normalised x and y."""
    ref = _reference("movenet_single_pose_lightning_ptq_reference.csv")
    got = _movenet_normalised("coral_squat.bmp")
    err = np.abs(got[:, :2] - ref[:, :2]).max(axis=1)
    assert (err <= 0.03).all(), dict(zip([k.name for k in Coco], err.round(3)))


@pytest.mark.parametrize("row,image", [(0, "tfexamples_image1.png"), (1, "tfexamples_image2.jpeg")])
def test_movenet_within_21px_of_tf_example_truth(row: int, image: str) -> None:
    with open(shared_path("images", "tfexamples_pose_landmark_truth.csv")) as f:
        truth = np.array(list(csv.reader(f))[1 + row], float).reshape(17, 2)
    img = load_rgb(shared_path("images", image))
    poses = open_engine("movenet-lightning", "cpu").infer(img)
    dist = np.linalg.norm(poses.xy[0] - truth, axis=1)
    assert (dist <= 21).all(), dict(zip([k.name for k in Coco], dist.round(1)))


@pytest.mark.edgetpu
def test_movenet_on_the_edge_tpu_matches_coral_reference() -> None:
    ref = _reference("movenet_single_pose_lightning_ptq_edgetpu_reference.csv")
    got = _movenet_normalised("coral_squat.bmp", "movenet-lightning-edgetpu")
    assert (np.abs(got[:, :2] - ref[:, :2]) <= 0.03).all()


@pytest.mark.parametrize("content,message", [
    (b"", "empty (0 bytes)"),
    (b"this is a text file, not a model\n", "not a TFLite model"),
])
def test_bad_model_files(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.tflite"
    p.write_bytes(content)
    with pytest.raises(ModelError, match=re.escape(message)):
        open_engine(p, "cpu", decoder="movenet", schema="coco17")


def test_truncated_model(tmp_path: Path) -> None:
    data = shared_path(*CORAL, "movenet_single_pose_lightning_ptq.tflite").read_bytes()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        open_engine(p, "cpu", decoder="movenet", schema="coco17")


def test_outputs_that_do_not_fit_the_decoder() -> None:
    posenet = shared_path(*CORAL, "posenet_mobilenet_v1_075_353_481_quant.tflite")
    eng = open_engine(posenet, "cpu", decoder="movenet", schema="coco17")
    with pytest.raises(ModelError, match="don't fit decoder 'movenet'"):
        eng.infer(np.zeros((240, 320, 3), np.uint8))
