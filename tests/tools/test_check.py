"""Edge TPU check: real Coral models (and Coral's own compiled MoveNet as the reference
for the split), plus small Keras models that break the Edge TPU rules in known ways."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from edgepose.core.errors import ModelError
from tests.conftest import shared_path
from tools import edgetpu_ops
from tools.check import check_model, format_report
from tools.cli import main

MOVENET = ("models", "coral", "movenet_single_pose_lightning_ptq.tflite")
MOVENET_TPU = ("models", "coral", "movenet_single_pose_lightning_ptq_edgetpu.tflite")
POSENETS = [f"posenet_mobilenet_v1_075_{s}_quant.tflite" for s in ("353_481", "481_641", "721_1281")]


def test_movenet_split_is_the_one_coral_compiler_made() -> None:
    report = check_model(shared_path(*MOVENET))
    compiled = check_model(shared_path(*MOVENET_TPU))  # read with the same parser
    names = [op.name for op in compiled.ops]
    custom = names.index(edgetpu_ops.EDGETPU_CUSTOM_OP)
    assert names.count(edgetpu_ops.EDGETPU_CUSTOM_OP) == 1
    # CPU input handling before the custom op, the post-processing tail after it, in order.
    assert [op.name for op in report.ops_on("cpu-in")] == names[:custom]
    assert [op.name for op in report.ops_on("cpu", "cpu-out")] == names[custom + 1:]
    # The tensors that cross from the Edge TPU part to the CPU are the custom op's outputs.
    tpu_out = {t.index: t for op in report.ops_on("tpu") for t in op.outputs}
    crossing = {t.index: t.shape for op in report.ops_on("cpu", "cpu-out") for t in op.inputs if t.index in tpu_out}
    assert Counter(crossing.values()) == Counter(t.shape for t in compiled.ops[custom].outputs)
    assert report.ops[report.split_index].name == "ARG_MAX"
    assert report.status == "cpu-tail" and report.ok and not report.fully_mapped
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    # The compiled build: its custom op is the Edge TPU part; no split to predict, no advice
    # to requantize the float input Coral chose to convert on the CPU.
    assert compiled.status == "compiled" and compiled.split_index is None and not compiled.problems
    assert [op.name for op in compiled.ops_on("tpu")] == [edgetpu_ops.EDGETPU_CUSTOM_OP]
    assert len(compiled.ops_on("cpu", "cpu-out")) == len(report.ops_on("cpu", "cpu-out"))
    text = format_report(compiled, verbose=False)
    assert "split at" not in text and f"{len(compiled.ops) - 1} ops outside edgetpu-custom-op" in text


def test_movenet_mapped_op_versions_are_accepted() -> None:
    report = check_model(shared_path(*MOVENET))
    mapped = report.ops_on("tpu")
    assert len(mapped) == 157 - 2 - 57  # what the custom op of Coral's build stands for
    for op in mapped:
        assert op.version <= edgetpu_ops.accepted_version(op.name), op.label
    assert not [p for p in report.problems if p.kind == "op-version"]
    assert 2_000_000 < report.param_bytes < edgetpu_ops.ON_CHIP_CACHE_BYTES


@pytest.mark.parametrize("name", POSENETS)
def test_posenet_backbones_map_fully(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_path("models", "coral", name)
    report = check_model(path)
    assert report.status == "mapped" and report.split_index is None and not report.problems
    assert {op.name for op in report.ops} == {"CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION"}
    assert main(["check", str(path)]) == 0
    assert "verdict: mapped" in capsys.readouterr().out


def test_float_mediapipe_model_splits_at_the_first_op(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_path("models", "mediapipe", "pose_landmark_lite.tflite")
    assert main(["check", "--json", str(path)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "split" and data["split_index"] == 0 and data["counts"]["tpu"] == 0
    assert data["problems"][0]["kind"] == "float-tensor" and data["problems"][0]["op_index"] == 0


@pytest.mark.parametrize("content, expected", [
    (None, "no such model file"),
    ("folder", "is a folder"),
    (b"not a model at all", "not a TensorFlow Lite flatbuffer"),
    (b"\x00\x00\x00\x00TFL3\xff\xff", "re-export it"),
    (100, "corrupt or truncated"),  # the first bytes of Coral's MoveNet: header fine, offsets dangle
    (2_000_000, "corrupt or truncated"),
])
def test_bad_files_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       content: bytes | str | int | None, expected: str) -> None:
    path = tmp_path / "model.tflite"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, int):
        path.write_bytes(shared_path(*MOVENET).read_bytes()[:content])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=expected):
        check_model(path)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


# --- small Keras models converted with TensorFlow ------------------------------------

@pytest.fixture(scope="module")
def bad_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("tensorflow")
    from tests.tools import tiny_models as tm

    images = shared_path("images")
    out = tmp_path_factory.mktemp("bad_models")
    b32 = tm.real_batches(images, 32)
    return {
        "transpose_conv": tm.to_tflite(tm.transpose_conv_model(32), out / "tc.tflite", b32),
        "hard_swish": tm.to_tflite(tm.hard_swish_model(32), out / "hs.tflite", b32),
        "float": tm.to_tflite(tm.heatmap_model(32), out / "float.tflite"),
        "dynamic_batch": tm.to_tflite(tm.heatmap_model(32, batch=None), out / "dyn.tflite", b32),
        "float_io": tm.to_tflite(tm.heatmap_model(32), out / "fio.tflite", b32, io="float32"),
        "good": tm.to_tflite(tm.heatmap_model(32), out / "good.tflite", b32),
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind, op, version, problem", [
    ("transpose_conv", "TRANSPOSE_CONV", 4, "op-version"),
    ("hard_swish", "HARD_SWISH", 1, "unsupported-op"),
    ("float", None, None, "float-tensor"),
    ("dynamic_batch", None, None, "dynamic-shape"),
])
def test_bad_models_name_the_op(bad_models: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                kind: str, op: str | None, version: int | None, problem: str) -> None:
    report = check_model(bad_models[kind])
    first = next(p for p in report.problems if p.severity == "error")
    assert first.kind == problem and first.op_index == report.split_index
    bad = report.ops[first.op_index]
    assert (first.op, first.version) == (bad.name, bad.version)
    if op:
        assert (bad.name, bad.version) == (op, version)
    assert report.status == "split" and not report.ok
    assert main(["check", str(bad_models[kind])]) == 1
    assert f"op {bad.index} {bad.name} v{bad.version}: " in capsys.readouterr().out


@pytest.mark.slow
def test_float_io_int8_model_maps_with_cpu_conversions(bad_models: dict[str, Path]) -> None:
    report = check_model(bad_models["float_io"])
    assert report.status == "mapped"
    warned = {(p.kind, p.op) for p in report.problems}
    assert warned == {("float-io", "QUANTIZE"), ("float-io", "DEQUANTIZE")}
    assert [op.name for op in report.ops_on("cpu-in", "cpu-out")] == ["QUANTIZE", "DEQUANTIZE"]
    good = check_model(bad_models["good"])
    assert good.status == "mapped" and not good.problems
    assert "verdict: mapped" in format_report(good)
