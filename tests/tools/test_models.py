"""The models convert to TFLite with static batch 1 and no TRANSPOSE_CONV v4 (Edge TPU)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from edgepose.core.errors import ConfigError


def _op_versions(keras_model: Any) -> Counter:
    """(op name, version) of every operator in the converted flatbuffer, via the tflite package."""
    import tensorflow as tf
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    buf = tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    inputs = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy().tolist()
    ops: Counter = Counter()
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        ops[(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], code.Version())] += 1
    ops[("input", str(inputs))] = 1
    return ops


def _assert_edgetpu_friendly(ops: Counter, input_shape: list[int]) -> None:
    assert ops[("input", str(input_shape))] == 1
    assert not [op for op in ops if op[0] == "TRANSPOSE_CONV" and op[1] >= 4]
    assert not [op for op in ops if op[0] == "TILE"], "the Edge TPU has no TILE op"


@pytest.mark.slow
def test_simple_baselines_batch1_converts_without_transpose_conv_v4() -> None:
    from tools.models.simple_baselines import build_simple_baselines

    model = build_simple_baselines((128, 128), num_joints=17, alpha=0.35, head_filters=32, batch_size=1)
    assert tuple(model.output.shape) == (1, 32, 32, 17)
    ops = _op_versions(model)
    _assert_edgetpu_friendly(ops, [1, 128, 128, 3])
    assert sum(n for (name, _), n in ops.items() if name == "RESIZE_BILINEAR") == 3


@pytest.mark.slow
def test_hourglass_batch1_converts_with_one_output_per_stack() -> None:
    from tools.models.hourglass import build_hourglass

    model = build_hourglass((64, 64), num_joints=16, num_stacks=2, num_filters=32, order=3, batch_size=1)
    assert [tuple(o.shape) for o in model.outputs] == [(1, 16, 16, 16)] * 2
    ops = _op_versions(model)
    _assert_edgetpu_friendly(ops, [1, 64, 64, 3])
    assert sum(n for (name, _), n in ops.items() if name == "RESIZE_NEAREST_NEIGHBOR") == 2 * 3


@pytest.mark.slow
def test_conv2d_transpose_bn_relu_head_gives_transpose_conv_v4() -> None:
    """The reason the heads above avoid it: TF 2.21 fuses BN+ReLU into TRANSPOSE_CONV v4."""
    from tests.tools.hostile_models import build_transpose_conv_head

    ops = _op_versions(build_transpose_conv_head((64, 64)))
    assert ("TRANSPOSE_CONV", 4) in ops


def test_training_models_have_a_dynamic_batch() -> None:
    from tools.models import build_model

    model = build_model("simple_baselines", input_size=(96, 96), num_joints=16, alpha=0.35, head_filters=16)
    assert tuple(model.input.shape) == (None, 96, 96, 3)


@pytest.mark.parametrize(("kind", "kwargs", "message"), [
    ("hourglass", {"input_size": (100, 100)}, "not divisible by 64"),
    ("hourglass", {"input_size": (64, 64), "num_filters": 2}, "multiple of 4, at least 8"),
    ("hourglass", {"input_size": (64, 64), "num_filters": 30}, "multiple of 4, at least 8"),
    ("simple_baselines", {"input_size": (100, 100)}, "not divisible by 32"),
    ("simple_baselines", {"interpolation": "cubic"}, "expected bilinear or nearest"),
    ("resnet", {}, "unknown model kind 'resnet'"),
])
def test_bad_model_settings(kind: str, kwargs: dict, message: str) -> None:
    from tools.models import build_model

    with pytest.raises(ConfigError, match=message):
        build_model(kind, **kwargs)
