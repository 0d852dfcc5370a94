"""Float TFLite importer: the flatbuffer's ops rebuilt as a TF graph, for our int8 path.

A float .tflite (MediaPipe's BlazePose, TF Hub's float16 MoveNet) has no SavedModel behind
it, often no signature, and float16 weights behind DEQUANTIZE ops. This reads the file with
the ``tflite`` package, takes the weights from its buffers (float16 widened to float32) and
replays each op with the TensorFlow op that converts back to the same TFLite builtin, so
TF's own converter quantizes it with real images like any other model (no
ai-edge-quantizer: its int8 CONV_2D is v6, which edgetpu_compiler 16 rejects). Tensors are
NHWC already; nothing is transposed. Sparse weights (DENSIFY) are read as TFLite densifies
them; rewrites for the Edge TPU: a grouped CONV_2D (v6) becomes one CONV_2D per group +
CONCATENATION, DEPTH_TO_SPACE (not an Edge TPU op) the TRANSPOSE_CONV that computes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError
from tools.importers import register
from tools.importers.base import ImportedModel, InputSpec

_NP_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}
_ACT = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}


def read_flatbuffer(path: Path) -> Any:
    import tflite

    buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TensorFlow Lite flatbuffer (no TFL3 identifier); give a float .tflite file")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise ModelError(f"{path}: {model.SubgraphsLength()} subgraphs; the importer takes single-graph models")
        return model
    except (IndexError, ValueError) as err:
        raise ModelError(f"{path}: corrupt or truncated TensorFlow Lite file ({err}); re-export it") from None


class _Graph:
    """The subgraph's tensors: constants as numpy, activations as TF tensors."""

    def __init__(self, path: Path, model: Any) -> None:
        import tflite

        self.path, self.model, self.sg = path, model, model.Subgraphs(0)
        self.opnames = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.consts: dict[int, npt.NDArray[Any]] = {}
        sparse = False
        for i in range(self.sg.TensorsLength()):
            t = self.sg.Tensors(i)
            data = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() else 0
            if t.Sparsity() is not None:
                sparse = True  # stored compressed behind a DENSIFY op; see _densified
            elif isinstance(data, np.ndarray) and data.size:
                dt = _NP_TYPES.get(t.Type())
                if dt is None:
                    raise ModelError(f"{path}: tensor {t.Name().decode()} has TFLite type {t.Type()}, not supported")
                shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
                self.consts[i] = data.view(dt).reshape(shape)
        if sparse:
            self.consts.update(self._densified())

    def _densified(self) -> dict[int, npt.NDArray[Any]]:
        """The outputs of the DENSIFY ops (sparse weights made dense), as TFLite itself computes them:
        one invoke of the original model with every tensor kept."""
        import warnings

        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        outs = [int(op.Outputs(0)) for op in (self.sg.Operators(k) for k in range(self.sg.OperatorsLength()))
                if self.op_name(op) == "DENSIFY"]
        with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": that is what this is
            warnings.simplefilter("ignore")
            interp = Interpreter(model_path=str(self.path), experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
        d = interp.get_input_details()[0]
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        interp.invoke()
        return {i: np.array(interp.get_tensor(i)) for i in outs}

    def op_name(self, op: Any) -> str:
        oc = self.model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        return (oc.CustomCode() or b"").decode() or self.opnames.get(code, str(code))

    def tensor_name(self, i: int) -> str:
        return str(self.sg.Tensors(i).Name().decode())

    def quantized(self) -> list[str]:
        """Names of int8/uint8 activations or weights outside DEQUANTIZE: the model is not float."""
        found = []
        for i in range(self.sg.TensorsLength()):
            t = self.sg.Tensors(i)
            q = t.Quantization()
            if t.Type() in (3, 9, 7) and q is not None and q.ScaleLength():
                found.append(t.Name().decode())
        return found


def _options(op: Any, cls: Any) -> Any:
    table = op.BuiltinOptions()
    opt = cls()
    if table is not None:
        opt.Init(table.Bytes, table.Pos)
    return opt


def _activate(tf: Any, x: Any, code: int) -> Any:
    act = _ACT.get(code, "?")
    if act == "?":
        raise ModelError(f"fused activation {code} is not supported")
    return {None: lambda v: v, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "tanh": tf.tanh,
            "relu_n1_to_1": lambda v: tf.clip_by_value(v, -1.0, 1.0)}[act](x)


def _padding(code: int) -> str:
    return "SAME" if code == 0 else "VALID"


def depth_to_space(tf: Any, x: Any, bs: int) -> Any:
    """DEPTH_TO_SPACE (not an Edge TPU op) as the TRANSPOSE_CONV (v2: no bias, mapped) that computes
    it exactly: stride ``bs``, a ``bs`` x ``bs`` kernel of ones picking channel (i*bs + j)*C + c
    for output pixel (i, j) and channel c, TensorFlow's DCR order."""
    _, h, w, cin = (int(d) for d in x.shape)
    cout = cin // (bs * bs)
    k = np.zeros((bs, bs, cout, cin), np.float32)
    for i in range(bs):
        for j in range(bs):
            k[i, j, np.arange(cout), (i * bs + j) * cout + np.arange(cout)] = 1.0
    return tf.nn.conv2d_transpose(x, k, (1, h * bs, w * bs, cout), (1, bs, bs, 1), "VALID")


def _run_op(tf: Any, tfl: Any, name: str, op: Any, ins: list[Any], consts: list[Any]) -> Any:
    """One TFLite builtin as TensorFlow ops; ``ins`` are tensors (constants included)."""
    if name == "CONV_2D":
        o = _options(op, tfl.Conv2DOptions)
        filt = np.transpose(consts[1], (1, 2, 3, 0))
        groups = int(ins[0].shape[-1]) // filt.shape[2]  # > 1: a grouped conv, CONV_2D v6 unless split

        def conv(x: Any, f: Any) -> Any:
            return tf.nn.conv2d(x, f, (1, o.StrideH(), o.StrideW(), 1), _padding(o.Padding()),
                                dilations=(o.DilationHFactor(), o.DilationWFactor()))
        y = conv(ins[0], filt) if groups == 1 else tf.concat(
            [conv(x, f) for x, f in zip(tf.split(ins[0], groups, -1), np.split(filt, groups, axis=3))], -1)
        y = y if len(ins) < 3 or ins[2] is None else tf.nn.bias_add(y, consts[2])
        return _activate(tf, y, o.FusedActivationFunction())
    if name == "DEPTHWISE_CONV_2D":
        o = _options(op, tfl.DepthwiseConv2DOptions)
        w = consts[1]  # [1, h, w, in * mult]
        cin = int(ins[0].shape[-1])
        filt = w.reshape(w.shape[1], w.shape[2], cin, w.shape[3] // cin)
        y = tf.nn.depthwise_conv2d(ins[0], filt, (1, o.StrideH(), o.StrideW(), 1), _padding(o.Padding()),
                                   dilations=(o.DilationHFactor(), o.DilationWFactor()))
        y = y if len(ins) < 3 or ins[2] is None else tf.nn.bias_add(y, consts[2])
        return _activate(tf, y, o.FusedActivationFunction())
    if name in ("ADD", "SUB", "MUL", "DIV"):
        cls = {"ADD": tfl.AddOptions, "SUB": tfl.SubOptions, "MUL": tfl.MulOptions, "DIV": tfl.DivOptions}[name]
        fn = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply, "DIV": tf.divide}[name]
        return _activate(tf, fn(ins[0], ins[1]), _options(op, cls).FusedActivationFunction())
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = _options(op, tfl.Pool2DOptions)
        y = tf.nn.pool(ins[0], (o.FilterHeight(), o.FilterWidth()), "MAX" if name == "MAX_POOL_2D" else "AVG",
                       strides=(o.StrideH(), o.StrideW()), padding=_padding(o.Padding()))
        return _activate(tf, y, o.FusedActivationFunction())
    if name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        bil = name == "RESIZE_BILINEAR"
        o = _options(op, tfl.ResizeBilinearOptions if bil else tfl.ResizeNearestNeighborOptions)
        fn = tf.raw_ops.ResizeBilinear if bil else tf.raw_ops.ResizeNearestNeighbor
        return fn(images=ins[0], size=[int(v) for v in consts[1]], align_corners=bool(o.AlignCorners()),
                  half_pixel_centers=bool(o.HalfPixelCenters()))
    if name == "CONCATENATION":
        o = _options(op, tfl.ConcatenationOptions)
        return _activate(tf, tf.concat(ins, o.Axis()), o.FusedActivationFunction())
    if name == "FULLY_CONNECTED":
        o = _options(op, tfl.FullyConnectedOptions)
        x = ins[0] if len(ins[0].shape) == 2 else tf.reshape(ins[0], (-1, consts[1].shape[1]))
        y = tf.matmul(x, consts[1].T)
        y = y if len(ins) < 3 or ins[2] is None else y + consts[2]
        return _activate(tf, y, o.FusedActivationFunction())
    if name == "TRANSPOSE_CONV":
        o = _options(op, tfl.TransposeConvOptions)
        filt = np.transpose(consts[1], (1, 2, 0, 3))  # [out, h, w, in] -> [h, w, out, in]
        y = tf.nn.conv2d_transpose(ins[2], filt, [int(v) for v in consts[0]], (1, o.StrideH(), o.StrideW(), 1),
                                   _padding(o.Padding()))
        bias = consts[3] if len(ins) > 3 and ins[3] is not None else None
        if bias is not None and o.FusedActivationFunction() == 1:  # relu(y + b) without TRANSPOSE_CONV v4
            return tf.maximum(y, -bias) + bias
        return _activate(tf, y if bias is None else y + bias, o.FusedActivationFunction())
    simple: dict[str, Callable[[], Any]] = {
        "PAD": lambda: tf.pad(ins[0], consts[1]),
        "RESHAPE": lambda: tf.reshape(ins[0], [int(v) for v in (
            consts[1] if len(ins) > 1 and consts[1] is not None
            else _options(op, tfl.ReshapeOptions).NewShapeAsNumpy())]),
        "LOGISTIC": lambda: tf.sigmoid(ins[0]),
        "RELU": lambda: tf.nn.relu(ins[0]),
        "RELU6": lambda: tf.nn.relu6(ins[0]),
        "TANH": lambda: tf.tanh(ins[0]),
        "HARD_SWISH": lambda: ins[0] * tf.nn.relu6(ins[0] + 3.0) / 6.0,
        "PRELU": lambda: tf.nn.relu(ins[0]) - consts[1] * tf.nn.relu(-ins[0]),
        "SOFTMAX": lambda: tf.nn.softmax(ins[0] * _options(op, tfl.SoftmaxOptions).Beta()),
        "MEAN": lambda: tf.reduce_mean(ins[0], [int(v) for v in np.ravel(consts[1])],
                                       keepdims=bool(_options(op, tfl.ReducerOptions).KeepDims())),
        "TRANSPOSE": lambda: tf.transpose(ins[0], [int(v) for v in consts[1]]),
        "DEPTH_TO_SPACE": lambda: depth_to_space(tf, ins[0], _options(op, tfl.DepthToSpaceOptions).BlockSize()),
    }
    if name in simple:
        return simple[name]()
    raise ModelError(f"op {name} is not supported by the float TFLite importer; supported: CONV_2D, "
                     f"DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED, ADD, SUB, MUL, DIV, MAX_POOL_2D, "
                     f"AVERAGE_POOL_2D, RESIZE_*, CONCATENATION, DEQUANTIZE, {', '.join(sorted(simple))}")


def build_function(g: _Graph, size: tuple[int, int], outputs: list[int]) -> Any:
    import tensorflow as tf
    import tflite as tfl

    sg = g.sg
    inp = sg.Inputs(0)

    @tf.function(input_signature=[tf.TensorSpec([1, size[0], size[1], 3], tf.float32, name="image")], autograph=False)
    def fn(image: Any) -> Any:
        vals: dict[int, Any] = {inp: image}
        consts = dict(g.consts)
        for k in range(sg.OperatorsLength()):
            op = sg.Operators(k)
            name = g.op_name(op)
            idx = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            out = int(op.Outputs(0))
            if name == "DENSIFY" and out in consts:  # made dense when the graph was read
                continue
            if name == "DEQUANTIZE" and idx[0] in consts:  # float16 (or int8) weights: widen once
                consts[out] = consts[idx[0]].astype(np.float32)
                continue
            c = [consts.get(i) if i >= 0 else None for i in idx]
            ins = [None if i < 0 else vals[i] if i in vals else tf.constant(consts[i].astype(np.float32)
                   if consts[i].dtype == np.float16 else consts[i]) for i in idx]
            try:
                vals[out] = _run_op(tf, tfl, name, op, ins, c)
            except ModelError as err:
                raise ModelError(f"{g.path}: op {k} ({g.tensor_name(out)}): {err}") from None
        return [vals[i] for i in outputs]

    return fn


@register("tflite")
def load_tflite(path: Path, *, input_size: tuple[int, int] | None = None, outputs: Any = None,
                **_: Any) -> ImportedModel:
    model = read_flatbuffer(path)
    g = _Graph(path, model)
    if any(g.op_name(g.sg.Operators(k)) == "edgetpu-custom-op" for k in range(g.sg.OperatorsLength())):
        raise ModelError(f"{path} is already compiled for the Edge TPU; give its CPU (float) model")
    q = g.quantized()
    if q:
        raise ModelError(f"{path} is already quantized ({len(q)} int8/uint8 tensors, e.g. {q[0]}); check and "
                         "compile it as it is (edgepose-tools check / compile) instead of quantizing it again")
    if g.sg.InputsLength() != 1:
        raise ModelError(f"{path}: {g.sg.InputsLength()} inputs; the importer takes models with one image input")
    t = g.sg.Tensors(g.sg.Inputs(0))
    shape = [int(d) for d in t.ShapeAsNumpy()]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or t.Type() != 0:
        raise ModelError(f"{path}: input {t.Name().decode()} is {shape} of TFLite type {t.Type()}; expected a "
                         "float32 image [1,H,W,3]")
    size: tuple[int, int] = input_size or (shape[1], shape[2])
    by_name = {g.tensor_name(i): i for i in range(g.sg.TensorsLength())}
    if outputs:
        missing = [o for o in outputs if o not in by_name]
        if missing:
            raise ModelError(f"{path}: no tensor named {', '.join(missing)}")
        out_idx = [by_name[o] for o in outputs]
    else:
        out_idx = [int(g.sg.Outputs(i)) for i in range(g.sg.OutputsLength())]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    fn = build_function(g, size, out_idx)
    concrete = fn.get_concrete_function()
    ops = [g.op_name(g.sg.Operators(k)) for k in range(g.sg.OperatorsLength())]
    notes = [f"{len(ops)} TFLite ops rebuilt ({ops.count('DEQUANTIZE')} DEQUANTIZE of stored weights folded); "
             f"signature: {'yes' if model.SignatureDefsLength() else 'none (not needed)'}"]
    return ImportedModel(path, "tflite", InputSpec(size), tuple(g.tensor_name(i) for i in out_idx),
                         lambda: tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn),
                         keepalive=[fn, concrete, g], notes=notes)
