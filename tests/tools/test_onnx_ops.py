"""Each ONNX op the importer translates, in a small NCHW graph, against onnxruntime: the
imported graph (converted to float TFLite) computes the same numbers, in NHWC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

C, H, W = 3, 16, 12  # an image input, as the importer requires
RNG = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return RNG.normal(0.0, 0.5, shape).astype(np.float32)


# name -> (nodes, initializers, output shape NCHW); the input is "x" [1, C, H, W]
def _cases() -> dict[str, tuple[list[Any], dict[str, np.ndarray], list[int]]]:
    n = helper.make_node
    return {
        "grouped_conv": ([n("Conv", ["x", "w0"], ["a"], kernel_shape=[1, 1]),
                          n("Conv", ["a", "w"], ["y"], group=2, kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                         {"w0": _w(4, C, 1, 1), "w": _w(6, 2, 3, 3)}, [1, 6, H, W]),
        "depthwise_x2_strided": ([n("Conv", ["x", "w", "b"], ["y"], group=C, kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1])], {"w": _w(2 * C, 1, 3, 3), "b": _w(2 * C)},
                                 [1, 2 * C, H // 2, W // 2]),
        "conv_asymmetric_pads": ([n("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[0, 1, 2, 1])],
                                 {"w": _w(3, C, 3, 3)}, [1, 3, H, W]),
        "conv_transpose_k3_outpad": ([n("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[3, 3],
                                        strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])],
                                     {"w": _w(C, 3, 3, 3), "b": _w(3)}, [1, 3, 2 * H, 2 * W]),
        "conv_transpose_bias_relu": ([n("ConvTranspose", ["x", "w", "b"], ["t"], kernel_shape=[4, 4], strides=[2, 2],
                                        pads=[1, 1, 1, 1]), n("Relu", ["t"], ["y"])],
                                     {"w": _w(C, 3, 4, 4), "b": _w(3)}, [1, 3, 2 * H, 2 * W]),
        "bn_clip_leaky_prelu": ([n("BatchNormalization", ["x", "g", "be", "m", "v"], ["a"]),
                                 n("Clip", ["a", "lo", "hi"], ["c"]), n("LeakyRelu", ["c"], ["d"], alpha=0.2),
                                 n("PRelu", ["x", "s"], ["e"]), n("Add", ["d", "e"], ["y"])],
                                {"g": _w(C), "be": _w(C), "m": _w(C), "v": np.abs(_w(C)) + 0.5,
                                 "lo": np.float32(0.0), "hi": np.float32(6.0), "s": np.abs(_w(C, 1, 1))},
                                [1, C, H, W]),
        "channel_arith_sigmoid": ([n("Sub", ["x", "mean"], ["a"]), n("Div", ["a", "std"], ["b"]),
                                   n("Mul", ["b", "k"], ["c"]), n("Sigmoid", ["c"], ["y"])],
                                  {"mean": _w(C, 1, 1), "std": np.abs(_w(1, C, 1, 1)) + 0.5, "k": np.float32(1.5)},
                                  [1, C, H, W]),
        "resize_nearest_concat": ([n("Resize", ["x", "", "sc"], ["u"], mode="nearest",
                                     coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                                   n("Resize", ["x", "", "", "sz"], ["l"], mode="linear",
                                     coordinate_transformation_mode="half_pixel"),
                                   n("Concat", ["u", "l"], ["y"], axis=1)],
                                  {"sc": np.float32([1, 1, 2, 2]), "sz": np.int64([1, C, 2 * H, 2 * W])},
                                  [1, 2 * C, 2 * H, 2 * W]),
        "upsample_opset9": ([n("Upsample", ["x", "sc"], ["y"], mode="nearest")],
                             {"sc": np.float32([1, 1, 2, 2])}, [1, C, 2 * H, 2 * W]),
        "pools": ([n("Relu", ["x"], ["r"]),  # ResNet's stem: ONNX pads 1/1 where TF's SAME would pad 0/1
                   n("MaxPool", ["r"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                   n("AveragePool", ["a"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                     count_include_pad=1)],
                  {}, [1, C, H // 4, W // 4]),
        "gap_flatten_gemm": ([n("GlobalAveragePool", ["x"], ["g"]), n("Flatten", ["g"], ["f"]),
                              n("Gemm", ["f", "w", "b"], ["y"], transB=1)], {"w": _w(5, C), "b": _w(5)}, [1, 5]),
        "reshape_transpose": ([n("Reshape", ["x", "s"], ["r"]), n("Transpose", ["r"], ["y"], perm=[0, 2, 1])],
                              {"s": np.int64([1, C, H * W])}, [1, H * W, C]),
    }


CASES = _cases()


def _model(tmp: Path, name: str) -> Path:
    nodes, inits, out_shape = CASES[name]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    opset = 9 if name == "upsample_opset9" else 13  # Upsample was deprecated in opset 10
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from tools import importers

    path = _model(tmp_path, name)
    imported = importers.load(path)
    assert imported.input.layout == "nchw" and imported.input.size == (H, W)
    it = Interpreter(model_content=imported.make_converter().convert())
    it.allocate_tensors()
    x = np.random.default_rng(1).normal(0.0, 2.0, (1, C, H, W)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x.transpose(0, 2, 3, 1))
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    (ref,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    if ref.ndim == 4:
        ref = ref.transpose(0, 2, 3, 1)  # 4-D outputs come out NHWC
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


def test_outputs_cut_the_graph_at_named_tensors(tmp_path: Path) -> None:
    from edgepose.core.errors import ModelError
    from tools import importers

    path = _model(tmp_path, "pools")
    cut = importers.load(path, outputs=["a"])  # the max pool, before the average pool
    assert cut.output_names == ("a",)
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=cut.make_converter().convert())
    assert list(it.get_output_details()[0]["shape"]) == [1, H // 2, W // 2, C]
    with pytest.raises(ModelError, match=r"no tensor named nope; tensors include"):
        importers.load(path, outputs=["nope"])
