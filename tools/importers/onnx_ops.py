"""ONNX ops as TensorFlow ops over NHWC tensors, for ``tools.importers.onnx``.

Every 4-D activation that ONNX holds as NCHW is kept here as NHWC (``Value.nhwc``), so
convolutions, pools and resizes become the TFLite ops the Edge TPU maps without a
TRANSPOSE around each one; a transpose back to NCHW is made only where ONNX semantics need
it (Reshape, Flatten, Transpose of a 4-D tensor). Choices made for edgetpu_compiler 16:
BatchNormalization is folded into the convolution before it; a ConvTranspose followed by
Relu keeps its bias out of the op as ``max(y, -b) + b`` (== ``relu(y + b)``), because TF 2.21
fuses bias + ReLU into TRANSPOSE_CONV v4, which the compiler rejects (v2 and v3 map).
TensorFlow is imported by the caller; handlers get it as ``tf``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


@dataclass
class Value:
    """A tensor while building: ``nhwc`` when it is a 4-D ONNX NCHW tensor held as NHWC;
    ``bias`` a per-channel bias not yet added (a ConvTranspose output, see the module doc)."""

    t: Any
    nhwc: bool = False
    bias: npt.NDArray[np.float32] | None = None
    nonneg: bool = False  # after ReLU & co.: zero padding is the same as -inf padding for MaxPool


class Builder:
    """Walks ONNX nodes in order; ``consts`` are initializers and Constant outputs (numpy)."""

    def __init__(self, tf: Any, consts: dict[str, npt.NDArray[Any]], where: str) -> None:
        self.tf = tf
        self.consts = consts
        self.values: dict[str, Value] = {}
        self.where = where

    # --- tensors -------------------------------------------------------------------
    def fail(self, node: Any, why: str) -> ModelError:
        return ModelError(f"{self.where}: node {node.name or node.op_type} ({node.op_type}): {why}")

    def const(self, name: str) -> npt.NDArray[Any] | None:
        return self.consts.get(name)

    def value(self, name: str) -> Value:
        v = self.values.get(name)
        if v is None:
            c = self.consts[name]
            return Value(self.tf.constant(c))
        if v.bias is not None:  # someone needs the finished tensor
            v = Value(v.t + self.tf.constant(v.bias), v.nhwc)
            self.values[name] = v
        return v

    def nhwc(self, name: str) -> Any:
        v = self.value(name)
        if v.nhwc:
            return v.t
        if len(v.t.shape) != 4:
            raise ModelError(f"{self.where}: tensor {name} has shape {list(v.t.shape)}; expected a 4-D image tensor")
        return self.tf.transpose(v.t, TO_NHWC)

    def onnx_layout(self, name: str) -> Any:
        """The tensor as ONNX sees it (NCHW for 4-D activations)."""
        v = self.value(name)
        return self.tf.transpose(v.t, TO_NCHW) if v.nhwc else v.t

    def set(self, node: Any, t: Any, nhwc: bool = False, bias: Any = None, nonneg: bool = False) -> None:
        self.values[node.output[0]] = Value(t, nhwc, bias, nonneg)

    def run(self, node: Any) -> None:
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise self.fail(node, f"op {node.op_type} is not supported by the ONNX importer; supported: "
                            f"{', '.join(sorted(HANDLERS))}")
        handler(self, node, attrs(node))


def attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one spatial axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _padding(b: Builder, node: Any, a: dict[str, Any], shape: Any, kernel: tuple[int, int],
             strides: tuple[int, int], dil: tuple[int, int]) -> str | list[list[int]]:
    """"SAME"/"VALID" when the ONNX pads match, else explicit NHWC pads."""
    auto = _s(a.get("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return "SAME"
    if auto == "VALID":
        return "VALID"
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        raise b.fail(node, f"pads {pads}: only 2-D ops are supported")
    if not any(pads):
        return "VALID"
    same = [_same_pads(int(shape[1 + i]), kernel[i], strides[i], dil[i]) for i in range(2)]
    if [pads[0], pads[2]] == list(same[0]) and [pads[1], pads[3]] == list(same[1]):
        return "SAME"
    return [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]]


def _conv(b: Builder, node: Any, a: dict[str, Any]) -> None:
    tf = b.tf
    w = b.const(node.input[1])
    if w is None or w.ndim != 4:
        raise b.fail(node, "weights must be a 4-D initializer")
    x = b.nhwc(node.input[0])
    bias = b.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    k = (w.shape[2], w.shape[3])
    strides = tuple(a.get("strides", (1, 1)))
    dil = tuple(a.get("dilations", (1, 1)))
    pad = _padding(b, node, a, x.shape, k, strides, dil)
    group, cin = int(a.get("group", 1)), int(x.shape[-1])
    if group == 1:
        y = tf.nn.conv2d(x, np.transpose(w, (2, 3, 1, 0)), (1, *strides, 1), pad, dilations=dil)
    elif group == cin and w.shape[1] == 1:
        filt = np.transpose(w, (2, 3, 0, 1)).reshape(k[0], k[1], cin, w.shape[0] // cin)
        y = tf.nn.depthwise_conv2d(x, filt, (1, *strides, 1), pad, dilations=dil)
    else:
        xs = tf.split(x, group, axis=-1)
        ws = np.split(w, group, axis=0)
        y = tf.concat([tf.nn.conv2d(xi, np.transpose(wi, (2, 3, 1, 0)), (1, *strides, 1), pad, dilations=dil)
                       for xi, wi in zip(xs, ws)], axis=-1)
    b.set(node, y if bias is None else tf.nn.bias_add(y, bias), nhwc=True)


def _conv_transpose(b: Builder, node: Any, a: dict[str, Any]) -> None:
    tf = b.tf
    w = b.const(node.input[1])
    if w is None or w.ndim != 4 or int(a.get("group", 1)) != 1:
        raise b.fail(node, "weights must be a 4-D initializer and group 1")
    if tuple(a.get("dilations", (1, 1))) != (1, 1):
        raise b.fail(node, "dilated ConvTranspose is not supported")
    x = b.nhwc(node.input[0])
    bias = b.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    kh, kw = w.shape[2], w.shape[3]
    sh, sw = a.get("strides", (1, 1))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    op = list(a.get("output_padding", [0, 0]))
    if _s(a.get("auto_pad", "NOTSET")) != "NOTSET" or "output_shape" in a:
        raise b.fail(node, "auto_pad/output_shape on ConvTranspose are not supported; export with explicit pads")
    h, wd = int(x.shape[1]), int(x.shape[2])
    full = ((h - 1) * sh + kh + op[0], (wd - 1) * sw + kw + op[1])
    out = (full[0] - pads[0] - pads[2], full[1] - pads[1] - pads[3])
    filt = np.transpose(w, (2, 3, 1, 0))  # [kh, kw, out, in]
    cout = filt.shape[2]
    same = (out == (h * sh, wd * sw) and (pads[0], pads[1]) == ((kh - sh) // 2, (kw - sw) // 2)
            and not any(op))
    if same:
        y = tf.nn.conv2d_transpose(x, filt, (1, *out, cout), (1, sh, sw, 1), "SAME")
    else:
        y = tf.nn.conv2d_transpose(x, filt, (1, *full, cout), (1, sh, sw, 1), "VALID")
        y = y[:, pads[0]:pads[0] + out[0], pads[1]:pads[1] + out[1], :]
    b.set(node, y, nhwc=True, bias=None if bias is None else bias.astype(np.float32))


def _relu(b: Builder, node: Any, a: dict[str, Any]) -> None:
    v = b.values.get(node.input[0])
    if v is not None and v.bias is not None:  # relu(y + bias) == max(y, -bias) + bias: no TRANSPOSE_CONV v4
        bias = v.bias
        b.set(node, b.tf.maximum(v.t, b.tf.constant(-bias)) + b.tf.constant(bias), v.nhwc, nonneg=True)
        return
    v = b.value(node.input[0])
    b.set(node, b.tf.nn.relu(v.t), v.nhwc, nonneg=True)


def _unary(fn: Callable[[Any, Any, dict[str, Any]], Any]) -> Callable[[Builder, Any, dict[str, Any]], None]:
    def handler(b: Builder, node: Any, a: dict[str, Any]) -> None:
        v = b.value(node.input[0])
        b.set(node, fn(b.tf, v.t, a), v.nhwc)
    return handler


def _clip(b: Builder, node: Any, a: dict[str, Any]) -> None:
    lo = a.get("min", -np.inf)
    hi = a.get("max", np.inf)
    if len(node.input) > 1 and node.input[1]:
        lo = float(b.consts[node.input[1]])
    if len(node.input) > 2 and node.input[2]:
        hi = float(b.consts[node.input[2]])
    v = b.value(node.input[0])
    tf = b.tf
    if (lo, hi) == (0.0, 6.0):
        y = tf.nn.relu6(v.t)
    elif lo == 0.0 and hi == np.inf:
        y = tf.nn.relu(v.t)
    else:
        y = tf.clip_by_value(v.t, lo, hi)
    b.set(node, y, v.nhwc, nonneg=lo >= 0)


def _channel_const(c: npt.NDArray[Any], nhwc: bool) -> npt.NDArray[np.float32]:
    """An ONNX constant broadcast against an NCHW tensor, laid out for its NHWC twin."""
    c = np.asarray(c, np.float32)
    if nhwc and c.ndim >= 1 and c.size > 1:
        c = np.transpose(c.reshape((1,) * (4 - c.ndim) + c.shape), TO_NHWC)
    return c


def _binary(op: str) -> Callable[[Builder, Any, dict[str, Any]], None]:
    def handler(b: Builder, node: Any, a: dict[str, Any]) -> None:
        tf = b.tf
        names = node.input[:2]
        vals = [b.values.get(n) for n in names]
        layout_nhwc = any(v is not None and v.nhwc for v in vals)
        ts = []
        for n, v in zip(names, vals):
            c = b.const(n) if v is None else None
            if c is not None:
                ts.append(tf.constant(_channel_const(c, layout_nhwc)))
            elif layout_nhwc:
                ts.append(b.nhwc(n) if len(b.value(n).t.shape) == 4 else b.value(n).t)
            else:
                ts.append(b.value(n).t)
        fn = {"Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "Div": tf.divide}[op]
        b.set(node, fn(ts[0], ts[1]), layout_nhwc)
    return handler


def _batchnorm(b: Builder, node: Any, a: dict[str, Any]) -> None:
    g, beta, mean, var = (np.asarray(b.consts[n], np.float32) for n in node.input[1:5])
    scale = g / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    v = b.value(node.input[0])
    shape = (1, 1, 1, -1) if v.nhwc else (1, -1, 1, 1)
    b.set(node, v.t * scale.reshape(shape) + (beta - mean * scale).reshape(shape), v.nhwc)


def _concat(b: Builder, node: Any, a: dict[str, Any]) -> None:
    vals = [b.value(n) for n in node.input]
    axis = int(a.get("axis", 1))
    if all(v.nhwc for v in vals):
        axis = {0: 0, 1: 3, 2: 1, 3: 2}[axis % 4]
        b.set(node, b.tf.concat([v.t for v in vals], axis), True)
    else:
        b.set(node, b.tf.concat([b.onnx_layout(n) for n in node.input], axis))


def _resize(b: Builder, node: Any, a: dict[str, Any]) -> None:
    tf = b.tf
    x = b.nhwc(node.input[0])
    h, w = int(x.shape[1]), int(x.shape[2])
    sizes = b.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    scales_name = node.input[2] if node.op_type == "Resize" and len(node.input) > 2 else \
        node.input[1] if node.op_type == "Upsample" and len(node.input) > 1 else ""
    scales = b.const(scales_name) if scales_name else None
    if scales is None and "scales" in a:  # Upsample before opset 9
        scales = np.asarray(a["scales"], np.float32)
    if sizes is not None and sizes.size == 4:
        size = (int(sizes[2]), int(sizes[3]))
    elif scales is not None and scales.size == 4:
        size = (int(np.floor(h * scales[2])), int(np.floor(w * scales[3])))
    else:
        raise b.fail(node, "needs constant scales or sizes")
    mode = _s(a.get("mode", "nearest"))
    ctm = _s(a.get("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else "asymmetric"))
    align, half = ctm == "align_corners", ctm in ("half_pixel", "pytorch_half_pixel")
    if mode == "nearest":
        if _s(a.get("nearest_mode", "round_prefer_floor")) != "floor" and ctm == "asymmetric" \
                and node.op_type == "Resize" and (size[0] % h or size[1] % w):
            raise b.fail(node, "nearest resize by a non-integer factor needs nearest_mode=floor")
        y = tf.raw_ops.ResizeNearestNeighbor(images=x, size=size, align_corners=align, half_pixel_centers=half)
    elif mode == "linear":
        y = tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=align, half_pixel_centers=half)
    else:
        raise b.fail(node, f"resize mode {mode!r} is not supported (nearest, linear)")
    b.set(node, y, True)


def _pool(kind: str) -> Callable[[Builder, Any, dict[str, Any]], None]:
    def handler(b: Builder, node: Any, a: dict[str, Any]) -> None:
        x = b.nhwc(node.input[0])
        nonneg = b.value(node.input[0]).nonneg
        k = tuple(a["kernel_shape"])
        s = tuple(a.get("strides", (1, 1)))
        pad = _padding(b, node, a, x.shape, k, s, (1, 1))
        if isinstance(pad, list):
            # Zero padding (TFLite PAD, mapped) is exact for a max pool over non-negative values and
            # for an average that counts the padding; anything else would change the numbers.
            if not ((kind == "MAX" and nonneg) or (kind == "AVG" and a.get("count_include_pad", 0))):
                raise b.fail(node, f"pool pads {a.get('pads')} match neither SAME nor VALID")
            x, pad = b.tf.pad(x, pad), "VALID"
        elif pad == "SAME" and kind == "AVG" and a.get("count_include_pad", 0):
            raise b.fail(node, "AveragePool with count_include_pad=1 and SAME-like pads is not supported")
        b.set(node, b.tf.nn.pool(x, k, kind, strides=s, padding=pad), True, nonneg=nonneg)
    return handler


def _global_avg(b: Builder, node: Any, a: dict[str, Any]) -> None:
    b.set(node, b.tf.reduce_mean(b.nhwc(node.input[0]), axis=(1, 2), keepdims=True), True)


def _matmul(b: Builder, node: Any, a: dict[str, Any]) -> None:
    tf = b.tf
    x = b.onnx_layout(node.input[0])
    if a.get("transA", 0):
        x = tf.transpose(x)
    wname = node.input[1]
    w = b.const(wname)
    wt = tf.constant(w.T if a.get("transB", 0) else w) if w is not None else b.onnx_layout(wname)
    y = tf.matmul(x, wt) * float(a.get("alpha", 1.0)) if node.op_type == "Gemm" else tf.matmul(x, wt)
    if len(node.input) > 2 and node.input[2]:
        y = y + float(a.get("beta", 1.0)) * b.consts[node.input[2]]
    b.set(node, y)


def _reshape(b: Builder, node: Any, a: dict[str, Any]) -> None:
    x = b.onnx_layout(node.input[0])
    if node.op_type == "Flatten":
        axis = int(a.get("axis", 1))
        dims = [int(d) for d in x.shape]
        shape = [int(np.prod(dims[:axis])), int(np.prod(dims[axis:]))]
    else:
        target = b.const(node.input[1])
        if target is None:
            raise b.fail(node, "needs a constant shape")
        shape = [int(d) if d != 0 else int(x.shape[i]) for i, d in enumerate(target)]
    b.set(node, b.tf.reshape(x, shape))


def _transpose(b: Builder, node: Any, a: dict[str, Any]) -> None:
    x = b.onnx_layout(node.input[0])
    perm = a.get("perm", list(range(len(x.shape)))[::-1])
    b.set(node, b.tf.transpose(x, perm))


def _identity(b: Builder, node: Any, a: dict[str, Any]) -> None:
    b.values[node.output[0]] = b.value(node.input[0])


def _prelu(b: Builder, node: Any, a: dict[str, Any]) -> None:
    v = b.value(node.input[0])
    slope = b.tf.constant(_channel_const(b.consts[node.input[1]], v.nhwc))
    b.set(node, b.tf.nn.relu(v.t) - slope * b.tf.nn.relu(-v.t), v.nhwc)


HANDLERS: dict[str, Callable[[Builder, Any, dict[str, Any]], None]] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "BatchNormalization": _batchnorm,
    "Relu": _relu, "Clip": _clip, "PRelu": _prelu,
    "Sigmoid": _unary(lambda tf, x, a: tf.sigmoid(x)),  # (not marked nonneg: sigmoid is rarely pooled)
    "Tanh": _unary(lambda tf, x, a: tf.tanh(x)),
    "LeakyRelu": _unary(lambda tf, x, a: tf.nn.leaky_relu(x, float(a.get("alpha", 0.01)))),
    "Add": _binary("Add"), "Sub": _binary("Sub"), "Mul": _binary("Mul"), "Div": _binary("Div"),
    "Concat": _concat, "Resize": _resize, "Upsample": _resize,
    "MaxPool": _pool("MAX"), "AveragePool": _pool("AVG"), "GlobalAveragePool": _global_avg,
    "Gemm": _matmul, "MatMul": _matmul, "Reshape": _reshape, "Flatten": _reshape, "Transpose": _transpose,
    "Identity": _identity, "Dropout": _identity,
}
