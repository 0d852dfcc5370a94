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
from tools.check import STATUS_TEXT, check_model, format_report
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
    # One problem that says what to do, not one per float tensor; the real parameter size.
    (problem,) = [p for p in data["problems"] if p["severity"] == "error"]
    assert problem["kind"] == "float-model" and problem["op_index"] == 0
    assert "edgepose-tools build" in problem["message"]
    assert data["total_param_bytes"] > 0.9 * path.stat().st_size and data["param_bytes"] == 0


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
    ("float", None, None, "float-model"),
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
    named = first.message if problem == "float-model" else f"op {bad.index} {bad.name} v{bad.version}: "
    assert named in capsys.readouterr().out


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


def test_quiet_prints_only_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_path(*MOVENET)
    assert main(["check", "--quiet", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"verdict: cpu-tail: {STATUS_TEXT['cpu-tail']}"]


def test_movenet_tail_is_described_as_by_design(capsys: pytest.CaptureFixture[str]) -> None:
    report = check_model(shared_path(*MOVENET))
    tail = [p for p in report.problems if p.kind == "cpu-tail"]
    assert len(tail) == 1 and tail[0].op == "ARG_MAX" and "by design" in tail[0].message
    # No advice to quantize the post-processing's float tensors (Cast_4 and friends).
    assert not [p for p in report.problems if p.kind in ("float-tensor", "dtype", "unsupported-op")]
    assert main(["check", str(shared_path(*MOVENET))]) == 0
    assert "Cast_4" not in capsys.readouterr().out.split("verdict")[0].split("\n\n")[-1]


@pytest.fixture(scope="module")
def version_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A float16 model, a grouped convolution (CONV_2D v6), a 16x8 (int16 activations) model."""
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf
    from keras import layers

    from tests.tools import tiny_models as tm

    out = tmp_path_factory.mktemp("versions")
    b32 = tm.real_batches(shared_path("images"), 32)
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = layers.Conv2D(8, 3, padding="same", groups=2)(x)
    grouped = tm.to_tflite(keras.Model(inp, layers.Conv2D(17, 1)(x)), out / "grouped.tflite", b32)
    paths = {"grouped": grouped}
    for name, setup in (("f16", "float16"), ("i16", "int16")):
        conv = tf.lite.TFLiteConverter.from_keras_model(tm.heatmap_model(32))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if setup == "float16":
            conv.target_spec.supported_types = [tf.float16]
        else:
            conv.representative_dataset = lambda: ([x] for x in b32)
            int16x8 = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            conv.target_spec.supported_ops = [int16x8]
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(conv.convert())
    return paths


@pytest.mark.slow
def test_float16_model_real_parameter_size_and_no_rank_flag_on_weights(version_models: dict[str, Path],
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    report = check_model(version_models["f16"])
    # float16 weights: 2 bytes per parameter of the tiny model (its Keras count), biases included.
    from tests.tools import tiny_models as tm

    params = tm.heatmap_model(32).count_params()
    assert 1.95 * params <= report.total_param_bytes <= 2 * params + 1024  # not 4 bytes each, not 0
    # Conv weights (4-D, dequantized from float16 at run time) are not activations.
    assert not [r for op in report.ops for r in op.reasons if r[0] == "rank"]
    assert [p.kind for p in report.problems if p.severity == "error"] == ["float-model"]
    main(["check", str(version_models["f16"])])
    assert f"parameters {report.total_param_bytes / 1024:.1f} KiB" in capsys.readouterr().out


@pytest.mark.slow
def test_rejected_op_versions_come_with_the_fix(version_models: dict[str, Path]) -> None:
    report = check_model(version_models["grouped"])
    bad = [p for p in report.problems if p.kind == "op-version"]
    assert {p.op for p in bad} == {"CONV_2D"} and {p.version for p in bad} == {6}
    grouped = [p for p in bad if "this op is a plain convolution" not in p.message]
    # Exactly the op whose filter has fewer input channels than its input is named grouped.
    (g,) = grouped
    op = report.ops[g.op_index]
    assert op.inputs[1].shape[-1] * 2 == op.inputs[0].shape[-1] and "Conv2D per group" in g.message
    assert report.split_index == min(p.op_index for p in bad)  # the version is per op type: every CONV_2D
    i16 = check_model(version_models["i16"])
    assert i16.status == "split" and not [p for p in i16.problems if p.kind == "float-model"]
    assert any("TFLITE_BUILTINS_INT8" in p.message for p in i16.problems)


@pytest.mark.parametrize("op, version, ins, outs, expected", [
    ("CONV_2D", 6, ("INT8", "INT8", "INT32"), ("INT8",), "grouped convolution"),
    ("CONV_2D", 4, ("INT16", "INT8", "INT64"), ("INT16",), "TFLITE_BUILTINS_INT8"),
    ("CONV_2D", 5, ("FLOAT32", "INT8", "FLOAT32"), ("FLOAT32",), "representative dataset"),
    ("CONV_2D", 7, ("INT8", "INT4", "INT32"), ("INT8",), "int4"),
    ("TRANSPOSE_CONV", 4, ("INT32", "INT8", "INT8"), ("INT8",), "Conv2DTranspose"),
    ("FULLY_CONNECTED", 5, ("INT8", "INT8", "INT32"), ("INT8",), "reshape to 2-D"),
    ("MUL", 3, ("INT8", "INT8"), ("INT8",), "fold the factor"),
    ("SOFTMAX", 3, ("INT8",), ("INT8",), "op_version.cc"),  # no known cause: the generic advice
])
def test_version_fix_table(op: str, version: int, ins: tuple[str, ...], outs: tuple[str, ...], expected: str) -> None:
    assert expected in edgetpu_ops.version_fix(op, version, ins, outs)


def test_registry_names_are_accepted_like_evaluate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--quiet", "posenet-mobilenet-v1-075-481x641"]) == 0
    assert capsys.readouterr().out.strip() == f"verdict: mapped: {STATUS_TEXT['mapped']}"
    assert main(["check", "--quiet", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'no-such-model'" in err and "movenet-lightning" in err
