"""TF.js graph models (model.json + weight shards) into one TensorFlow graph.

A TF.js graph model is a GraphDef in JSON whose Const nodes carry no values: the values
are in the binary shards listed by ``weightsManifest``, in order, possibly stored
quantized (``uint8``/``uint16`` with ``scale``/``min``, or ``float16``). The converter
also fused ops that TensorFlow's importer (or the TFLite converter) does not take:
``_FusedConv2D``, ``FusedDepthwiseConv2dNative`` and ``_FusedMatMul`` with a
``fused_ops`` list (BiasAdd, FusedBatchNorm, Relu, Relu6, Elu, Sigmoid, Tanh, LeakyRelu,
Prelu); they are split back into plain ops, the last one keeping the fused node's name
so that consumers and ``outputs=`` names still resolve.

The input placeholder is replaced by a float32 [1, H, W, 3] NHWC one (an int32 input's
Cast becomes a no-op; an NCHW input gets a transpose behind it); ``outputs=`` cuts the
graph at named tensors (node names, ``name:0`` also accepted), so post-processing the
Edge TPU cannot run is left out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError
from tools.importers import register
from tools.importers.base import ImportedModel, InputSpec

# TF.js weight dtypes -> numpy; quantized storage dtypes
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "uint8": np.uint8, "float16": np.float16,
           "int64": np.int64}
_QDTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}
_UNARY = {"Relu": "Relu", "Relu6": "Relu6", "Elu": "Elu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Selu": "Selu"}
_FUSED = ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedDepthwiseConv2dNative", "_FusedMatMul")
# ops that pick indices (argmax, top-k, gathers): post-processing, no int8 network op
INDEX_OPS = ("ArgMax", "ArgMin", "TopKV2", "GatherNd", "GatherV2", "Where", "NonMaxSuppressionV3",
             "NonMaxSuppressionV4", "NonMaxSuppressionV5")
# ops that belong to the network even when only post-processing consumes them
NETWORK_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BiasAdd", "FusedBatchNormV3", "Relu", "Relu6",
               "Sigmoid", "Placeholder", "Const")
# sensible sizes for inputs with dynamic dims, by the model's own signature or this
DEFAULT_DYNAMIC_SIZE = (256, 256)


def read_weights(folder: Path, manifest: list[dict[str, Any]]) -> dict[str, npt.NDArray[Any]]:
    """Every weight of ``weightsManifest``, dequantized to its declared dtype."""
    out: dict[str, npt.NDArray[Any]] = {}
    for group in manifest:
        try:
            buf = b"".join((folder / p).read_bytes() for p in group["paths"])
        except OSError as err:
            raise ModelError(f"{folder}: weight shard {err.filename} cannot be read ({err.strerror}); "
                             "keep the .bin files next to model.json") from None
        offset = 0
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            dtype = w["dtype"]
            if dtype not in _DTYPES:
                raise ModelError(f"{folder}: weight {w['name']} has dtype {dtype!r}, which this importer does not read")
            store = np.dtype(_QDTYPES[q["dtype"]]) if q else np.dtype(_DTYPES[dtype])
            nbytes = count * store.itemsize
            if offset + nbytes > len(buf):
                raise ModelError(f"{folder}: weight shards end at byte {len(buf)} inside weight {w['name']}; "
                                 "the .bin files are truncated or belong to another model.json")
            raw = np.frombuffer(buf, store, count, offset).reshape(shape)
            offset += nbytes
            if q and q["dtype"] in ("uint8", "uint16"):
                val: npt.NDArray[Any] = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
                if dtype == "int32":
                    val = np.round(val)
            else:
                val = raw
            out[w["name"]] = val.astype(_DTYPES[dtype])
    return out


def _attr_list_s(attr: Any) -> list[str]:
    return [s.decode() for s in attr.list.s]


def _split_fused(gd: Any, tf: Any) -> int:
    """Replace every TF.js fused op in ``gd`` by plain ops; returns how many were split."""
    from tensorflow.core.framework import node_def_pb2

    new_nodes, count = [], 0
    for node in gd.node:
        if node.op not in _FUSED:
            new_nodes.append(node)
            continue
        count += 1
        fused = _attr_list_s(node.attr["fused_ops"]) if "fused_ops" in node.attr else []
        num_args = node.attr["num_args"].i if "num_args" in node.attr else len(node.input) - 2
        x, w, args = node.input[0], node.input[1], list(node.input[2:2 + num_args])
        ctrl = [i for i in node.input if i.startswith("^")]
        chain: list[Any] = []

        def add(op: str, inputs: list[str], chain: list[Any] = chain, base: str = node.name, **attrs: Any) -> str:
            n = node_def_pb2.NodeDef(name=f"{base}/_{len(chain)}_{op}", op=op, input=inputs)
            for k, v in attrs.items():
                n.attr[k].CopyFrom(v)
            chain.append(n)
            return n.name

        t = node.attr["T"]
        if node.op == "_FusedMatMul":
            base = "MatMul"
            keep = ("T", "transpose_a", "transpose_b")
        elif node.op == "_FusedConv2D":
            base = "Conv2D"
            keep = ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations", "use_cudnn_on_gpu")
        else:
            base = "DepthwiseConv2dNative"
            keep = ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations")
        y = add(base, [x, w] + ctrl, **{k: node.attr[k] for k in keep if k in node.attr})
        fmt = node.attr["data_format"] if "data_format" in node.attr else None
        rest = list(args)
        for op in fused:
            if op == "BiasAdd":
                y = add("BiasAdd", [y, rest.pop(0)], T=t, **({"data_format": fmt} if fmt is not None else {}))
            elif op == "FusedBatchNorm":
                if len(rest) < 4:
                    raise ModelError(f"{node.name}: FusedBatchNorm needs scale, offset, mean, variance arguments")
                scale, offset, mean, var = rest[:4]
                del rest[:4]
                eps = tf.compat.v1.AttrValue(f=node.attr["epsilon"].f if "epsilon" in node.attr else 1e-3)
                y = add("FusedBatchNormV3", [y, scale, offset, mean, var], T=t, U=t, epsilon=eps,
                        is_training=tf.compat.v1.AttrValue(b=False),
                        **({"data_format": fmt} if fmt is not None else {}))
            elif op in _UNARY:
                y = add(_UNARY[op], [y], T=t)
            elif op == "LeakyRelu":
                alpha = node.attr["leakyrelu_alpha"].f if "leakyrelu_alpha" in node.attr else 0.2
                y = add("LeakyRelu", [y], T=t, alpha=tf.compat.v1.AttrValue(f=alpha))
            elif op == "Prelu":  # relu(x) + alpha * min(x, 0): the TFLite converter fuses this to PRELU
                alpha = rest.pop(0)
                pos = add("Relu", [y], T=t)
                neg = add("Neg", [add("Relu", [add("Neg", [y], T=t)], T=t)], T=t)
                y = add("AddV2", [pos, add("Mul", [alpha, neg], T=t)], T=t)
            else:
                raise ModelError(f"{node.name}: fused op {op!r} of {node.op} is not supported by the TF.js importer")
        chain[-1].name = node.name  # consumers (and outputs=) refer to the fused node's name
        new_nodes.extend(chain)
    del gd.node[:]
    gd.node.extend(new_nodes)
    return count


def post_processing_tail(gd: Any) -> list[str]:
    """Names of the nodes after the network: everything downstream of an index op (argmax,
    top-k, gather) and the ops that only feed such a tail (e.g. a heatmap reshaped for
    argmax), but never a conv, its bias or activation. Quantizing those to int8 breaks
    argmax ties (a low heatmap becomes flat in int8), so they stay float, as in Coral's
    int8 MoveNet."""
    consumers: dict[str, list[str]] = {}
    ops = {n.name: n.op for n in gd.node}
    for n in gd.node:
        for inp in n.input:
            consumers.setdefault(inp.lstrip("^").split(":")[0], []).append(n.name)
    tail = {n.name for n in gd.node if n.op in INDEX_OPS}
    todo = list(tail)
    while todo:
        for c in consumers.get(todo.pop(), []):
            if c not in tail:
                tail.add(c)
                todo.append(c)
    if not tail:
        return []
    changed = True
    while changed:
        changed = False
        for n in gd.node:
            users = consumers.get(n.name, [])
            if n.name not in tail and n.op not in NETWORK_OPS and users and all(u in tail for u in users):
                tail.add(n.name)
                changed = True
    return [n.name for n in gd.node if n.name in tail and ops[n.name] != "Identity"]


def _batch_unstack_to_squeeze(gd: Any) -> int:
    """``Unpack`` of a batch of one (MoveNet's resize wrapper) becomes ``Squeeze``: TFLite's
    UNPACK does not map to the Edge TPU, a reshape does."""
    count = 0
    for n in gd.node:
        if n.op == "Unpack" and n.attr["num"].i == 1:
            axis = n.attr["axis"].i
            t = n.attr["T"].type
            n.op = "Squeeze"
            n.ClearField("attr")
            n.attr["T"].type = t
            n.attr["squeeze_dims"].list.i.append(axis)
            count += 1
    return count


def _clip_output(gd: Any, tf: Any, name: str, lo: float, hi: float) -> str:
    """Append ``min(max(name, lo), hi)`` to ``gd``; returns the new output's name."""
    from tensorflow.core.framework import node_def_pb2

    if not lo < hi:
        raise ModelError(f"clip range for {name} is [{lo}, {hi}]; give LO < HI")
    nodes = []
    prev = name
    for op, value in (("Maximum", lo), ("Minimum", hi)):
        const = node_def_pb2.NodeDef(name=f"{name}/_clip_{op.lower()}_value", op="Const")
        const.attr["dtype"].type = tf.float32.as_datatype_enum
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(value)))
        node = node_def_pb2.NodeDef(name=f"{name}/_clip_{op.lower()}", op=op, input=[prev, const.name])
        node.attr["T"].type = tf.float32.as_datatype_enum
        nodes += [const, node]
        prev = node.name
    gd.node.extend(nodes)
    return prev


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def _replace_input(gd: Any, tf: Any, size: tuple[int, int], nchw: bool) -> str:
    """A float32 [1, H, W, 3] NHWC placeholder in place of the model's input; returns its name."""
    from tensorflow.core.framework import node_def_pb2

    ph = [n for n in gd.node if n.op == "Placeholder"]
    if len(ph) != 1:
        raise ModelError(f"TF.js graph has {len(ph)} inputs ({', '.join(n.name for n in ph)}); only one-image "
                         "models are supported")
    old = ph[0]
    name = old.name
    src_dtype = old.attr["dtype"].type
    h, w = size
    new = node_def_pb2.NodeDef(name=name, op="Placeholder")
    new.attr["dtype"].type = tf.float32.as_datatype_enum
    new.attr["shape"].shape.CopyFrom(tf.TensorShape([1, h, w, 3]).as_proto())
    old.CopyFrom(new)
    feed = name
    extra = []
    if nchw:
        perm = node_def_pb2.NodeDef(name=f"{name}/_nchw_perm", op="Const")
        perm.attr["dtype"].type = tf.int32.as_datatype_enum
        perm.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array([0, 3, 1, 2], np.int32)))
        tr = node_def_pb2.NodeDef(name=f"{name}/_to_nchw", op="Transpose", input=[name, perm.name])
        tr.attr["T"].type = tf.float32.as_datatype_enum
        tr.attr["Tperm"].type = tf.int32.as_datatype_enum
        extra += [perm, tr]
        feed = tr.name
    as_int = None
    for n in gd.node:
        for i, inp in enumerate(n.input):
            if inp not in (name, f"{name}:0") or n.name == feed:
                continue
            if n.op == "Cast" and src_dtype != tf.float32.as_datatype_enum:
                n.attr["SrcT"].type = tf.float32.as_datatype_enum  # Cast float->float: a no-op
                n.input[i] = feed
            elif n.op in ("Shape", "Size", "Rank") or src_dtype == tf.float32.as_datatype_enum:
                n.input[i] = feed
            else:  # an op that needs the original integer input
                if as_int is None:
                    as_int = node_def_pb2.NodeDef(name=f"{name}/_as_original_dtype", op="Cast", input=[feed])
                    as_int.attr["SrcT"].type = tf.float32.as_datatype_enum
                    as_int.attr["DstT"].type = src_dtype
                    extra.append(as_int)
                n.input[i] = as_int.name
    gd.node.extend(extra)
    return name


def fix_input(gd: Any, tf: Any, name: str, size: tuple[int, int]) -> None:
    """Give a float NHWC placeholder (a SavedModel's, with a dynamic batch) the static [1,H,W,3]."""
    for n in gd.node:
        if n.name == name:
            n.attr["shape"].shape.CopyFrom(tf.TensorShape([1, size[0], size[1], 3]).as_proto())
            return
    raise ModelError(f"no input {name!r} in the graph")


def _input_shape(node: dict[str, Any]) -> list[int]:
    dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
    return [int(d.get("size", -1)) for d in dims]


def _signature_size(model: dict[str, Any], nchw: bool) -> tuple[int, int] | None:
    for spec in model.get("signature", {}).get("inputs", {}).values():
        dims = [int(d.get("size", -1)) for d in spec.get("tensorShape", {}).get("dim", [])]
        if len(dims) == 4:
            h, w = (dims[2], dims[3]) if nchw else (dims[1], dims[2])
            if h > 0 and w > 0:
                return h, w
    return None


def _default_outputs(model: dict[str, Any], node_names: set[str]) -> list[str]:
    outs = [spec.get("name", key) for key, spec in model.get("signature", {}).get("outputs", {}).items()]
    outs = [o.split(":")[0] for o in outs]
    return [o for o in outs if o in node_names] or ["Identity"]


@register("tfjs")
def load_tfjs(path: Path, *, outputs: list[str] | tuple[str, ...] | None = None,
              input_size: tuple[int, int] | None = None, clip: dict[str, tuple[float, float]] | None = None,
              **_: Any) -> ImportedModel:
    """Import a TF.js graph model (``model.json`` or its folder); see the module docstring.
    ``clip`` bounds named outputs to ``(lo, hi)`` (int8 then spends its 256 steps on that range:
    e.g. MultiPose's keypoint offsets, which matter within a few cells but reach +-20)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    json_path = path / "model.json" if path.is_dir() else path
    try:
        model = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{json_path} is not a readable TF.js model.json ({err}); give the model.json of a "
                         "TF.js graph model") from None
    if model.get("format") not in (None, "graph-model") or "modelTopology" not in model:
        raise ModelError(f"{json_path}: format {model.get('format')!r} is not a TF.js graph model (a layers-model "
                         "is a Keras model: convert it with tensorflowjs_converter --output_format keras)")
    topo = model["modelTopology"]
    names = {n.get("name", "") for n in topo.get("node", [])}
    wanted = [o.split(":")[0] for o in outputs] if outputs else _default_outputs(model, names)
    missing = [o for o in wanted if o not in names]
    if missing:  # before anything heavy: a typo costs a second, not a TensorFlow import
        close = sorted(n for n in names if missing[0].rsplit("/", 1)[-1] in n)[:3]
        raise ModelError(f"{json_path}: no tensor named {missing[0]!r} in the graph"
                         + (f" (similar: {', '.join(close)})" if close else "")
                         + "; give node names from model.json to --outputs")

    import tensorflow as tf
    from google.protobuf import json_format

    gd = tf.compat.v1.GraphDef()
    json_format.ParseDict({"node": topo["node"], "versions": topo.get("versions", {}),
                           "library": topo.get("library", {})}, gd, ignore_unknown_fields=True)
    weights = read_weights(json_path.parent, model.get("weightsManifest", []))
    filled = 0
    for n in gd.node:
        if n.op == "Const" and n.name in weights:
            value = weights[n.name]
            if n.attr["dtype"].type:  # TF.js stores int64 constants as int32: back to the graph's dtype
                value = value.astype(tf.dtypes.as_dtype(n.attr["dtype"].type).as_numpy_dtype)
            n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            n.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            filled += 1
        n.ClearField("device")
    n_fused = _split_fused(gd, tf)
    _batch_unstack_to_squeeze(gd)

    ph = [n for n in topo["node"] if n["op"] == "Placeholder"]
    shape = _input_shape(ph[0]) if ph else []
    nchw = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
    if input_size is None:
        fixed = (shape[2], shape[3]) if nchw else (shape[1:3] if len(shape) == 4 else (-1, -1))
        input_size = (int(fixed[0]), int(fixed[1])) if min(fixed) > 0 else (
            _signature_size(model, nchw) or DEFAULT_DYNAMIC_SIZE)
    size = (int(input_size[0]), int(input_size[1]))
    in_name = _replace_input(gd, tf, size, nchw)

    notes = [f"{filled} weights read from {len(model.get('weightsManifest', []))} shard group(s)",
             f"split {n_fused} fused ops", f"input {in_name}: float32 [1,{size[0]},{size[1]},3] NHWC"
             + (" (transposed to the model's NCHW)" if nchw else "")]
    return graph_model(gd, in_name, wanted, clip, path, "tfjs", InputSpec(size, layout="nchw" if nchw else "nhwc"),
                       notes, cut=bool(outputs))


def graph_model(gd: Any, in_name: str, wanted: list[str], clip: dict[str, tuple[float, float]] | None,
                path: Path, fmt: str, spec: InputSpec, notes: list[str], cut: bool = True) -> ImportedModel:
    """A frozen GraphDef with a float [1,H,W,3] input ``in_name``, cut at ``wanted`` (clipped as
    asked), behind a TFLite converter factory; shared by the TF.js and SavedModel importers."""
    import tensorflow as tf

    gd = tf.compat.v1.graph_util.extract_sub_graph(gd, wanted)
    wanted = [_clip_output(gd, tf, o, *clip[o]) if clip and o in clip else o for o in wanted]
    tail = post_processing_tail(gd)

    def _import() -> None:
        tf.compat.v1.import_graph_def(gd, name="")

    try:
        wrapped = tf.compat.v1.wrap_function(_import, [])
        g = wrapped.graph
        fn = wrapped.prune(feeds=[g.get_tensor_by_name(_tensor_name(in_name))],
                           fetches=[g.get_tensor_by_name(_tensor_name(o)) for o in wanted])
    except (ValueError, TypeError, tf.errors.OpError) as err:
        why = str(err).splitlines()[0][:200]
        raise ModelError(f"{path}: TensorFlow cannot import the graph ({why})") from None
    if cut:
        notes.append(f"cut at {', '.join(wanted)}")
    if tail:
        kinds = sorted({n.split("/")[-1] for n in tail})[:4]
        notes.append(f"{len(tail)} post-processing ops stay float in int8 ({', '.join(kinds)}, ...)")
    return ImportedModel(path, fmt, spec, tuple(wanted),
                         lambda: tf.lite.TFLiteConverter.from_concrete_functions([fn], wrapped),
                         keepalive=[wrapped, fn], notes=notes, float_tail=tuple(tail))
