"""Small ONNX pose networks built with the ``onnx`` package, for the importer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # 0..255 RGB, torchvision's normalisation
IMAGENET_STD = (58.395, 57.12, 57.375)


def simple_baselines_onnx(path: Path, size: tuple[int, int] = (128, 96), joints: int = 17, seed: int = 0) -> Path:
    """A Simple-Baselines-style NCHW network: strided conv stem (Conv+BN+ReLU, a max pool,
    a residual block), two ConvTranspose+BN+ReLU stages, a 1x1 head of ``joints`` heatmaps
    at stride 4. Weights are fixed "trained-like" draws: He-scaled convolutions, BatchNorm
    statistics near the unit scale its ImageNet-normalised input has."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    count = [0]

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def fresh(prefix: str) -> str:
        count[0] += 1
        return f"{prefix}{count[0]}"

    def bn_relu(x: str, c: int, relu: bool = True) -> str:
        n = fresh("bn")
        ins = [x, init(n + ".g", rng.uniform(0.8, 1.2, c)), init(n + ".b", rng.normal(0.0, 0.1, c)),
               init(n + ".m", rng.normal(0.0, 0.1, c)), init(n + ".v", rng.uniform(0.8, 1.2, c))]
        nodes.append(helper.make_node("BatchNormalization", ins, [n], name=n, epsilon=1e-5))
        if not relu:
            return n
        r = fresh("relu")
        nodes.append(helper.make_node("Relu", [n], [r], name=r))
        return r

    def conv(x: str, cin: int, cout: int, k: int, stride: int) -> str:
        n = fresh("conv")
        w = rng.normal(0.0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))
        nodes.append(helper.make_node("Conv", [x, init(n + ".w", w)], [n], name=n, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        return n

    def deconv(x: str, cin: int, cout: int) -> str:
        n = fresh("deconv")
        w = rng.normal(0.0, np.sqrt(2.0 / (cin * 4)), (cin, cout, 4, 4))  # each output sees 2x2 taps
        nodes.append(helper.make_node("ConvTranspose", [x, init(n + ".w", w)], [n], name=n, kernel_shape=[4, 4],
                                      strides=[2, 2], pads=[1, 1, 1, 1]))
        return n

    x = bn_relu(conv("image", 3, 16, 3, 2), 16)                       # stride 2
    x = bn_relu(conv(x, 16, 32, 3, 2), 32)                            # stride 4
    p = fresh("pool")
    nodes.append(helper.make_node("MaxPool", [x], [p], name=p, kernel_shape=[2, 2], strides=[2, 2]))  # stride 8
    y = bn_relu(conv(bn_relu(conv(p, 32, 32, 3, 1), 32), 32, 32, 3, 1), 32, relu=False)
    s = fresh("add")
    nodes.append(helper.make_node("Add", [p, y], [s], name=s))       # residual block
    r = fresh("relu")
    nodes.append(helper.make_node("Relu", [s], [r], name=r))
    x = bn_relu(conv(r, 32, 64, 3, 2), 64)                            # stride 16
    x = bn_relu(deconv(x, 64, 32), 32)                                # stride 8
    x = bn_relu(deconv(x, 32, 32), 32)                                # stride 4
    head = "heatmaps"
    w = rng.normal(0.0, np.sqrt(1.0 / 32), (joints, 32, 1, 1))
    nodes.append(helper.make_node("Conv", [x, init("head.w", w), init("head.b", rng.normal(0.0, 0.1, joints))],
                                  [head], name="head", kernel_shape=[1, 1]))
    h, w_ = size
    graph = helper.make_graph(
        nodes, "simple_baselines_tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w_])],
        [helper.make_tensor_value_info(head, TensorProto.FLOAT, [1, joints, h // 4, w_ // 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
