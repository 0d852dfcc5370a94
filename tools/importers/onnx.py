"""ONNX importer: an ONNX model (NCHW or NHWC) becomes a TF graph with an NHWC image input.

Our own translation of the common pose-network op set (``tools.importers.onnx_ops``), not
onnx2tf: weights come from the initializers, BatchNormalization is folded into the
convolution before it, 4-D activations stay NHWC, and 4-D outputs come out NHWC (what the
heatmap decoders read). An NCHW model's manifest says ``layout = nchw`` only as a record;
the imported graph takes NHWC frames like every other model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError
from tools.importers import register
from tools.importers.base import ImportedModel, InputSpec


def read_onnx(path: Path) -> Any:
    """The parsed model; a one-line error for a file that is not ONNX."""
    try:
        import onnx
    except ImportError:
        raise ModelError("importing ONNX needs the onnx package: pip install 'edgepose[tools]'") from None
    try:
        model = onnx.load(str(path))
    except Exception as err:  # DecodeError, or onnx's own ValueError for other files
        raise ModelError(f"{path} is not an ONNX model ({type(err).__name__}); export it with torch.onnx.export "
                         "or give a .keras, SavedModel, TF.js or .tflite model") from None
    if not model.graph.node:
        raise ModelError(f"{path} is not an ONNX model with a graph (no nodes); re-export it")
    return model


def _constants(model: Any) -> dict[str, npt.NDArray[Any]]:
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return consts


def fold_batchnorm(nodes: list[Any], consts: dict[str, npt.NDArray[Any]]) -> tuple[list[Any], int]:
    """Fold BatchNormalization into the Conv/ConvTranspose feeding it (when that conv feeds
    nothing else): scaled weights and a bias, as the trained network computes them."""
    users: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    producer = {n.output[0]: n for n in nodes if n.output}
    drop, folded = set(), 0
    for bn in nodes:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or users.get(bn.input[0], 0) != 1:
            continue
        if conv.input[1] not in consts or not all(n in consts for n in bn.input[1:5]):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        g, beta, mean, var = (np.asarray(consts[n], np.float32) for n in bn.input[1:5])
        scale = g / np.sqrt(var + eps)
        w = np.asarray(consts[conv.input[1]], np.float32)
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        if conv.op_type == "Conv":
            w = (w * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
        elif group == 1:
            w = (w * scale.reshape(1, -1, 1, 1)).astype(np.float32)
        else:
            continue
        bias = consts[conv.input[2]] if len(conv.input) > 2 and conv.input[2] else np.zeros_like(scale)
        wname, bname = f"{conv.name or conv.output[0]}/folded_w", f"{conv.name or conv.output[0]}/folded_b"
        consts[wname], consts[bname] = w, (np.asarray(bias, np.float32) - mean) * scale + beta
        del conv.input[1:]
        conv.input.extend([wname, bname])
        conv.output[0] = bn.output[0]
        drop.add(id(bn))
        folded += 1
    return [n for n in nodes if id(n) not in drop], folded


def _input(path: Path, model: Any, consts: dict[str, Any], input_size: tuple[int, int] | None,
           layout: str | None = None) -> tuple[str, tuple[int, int], str]:
    """The image input's name, (h, w) and layout (detected from the 3-channel axis unless given)."""
    inputs = [i for i in model.graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise ModelError(f"{path}: {len(inputs)} graph inputs ({', '.join(i.name for i in inputs)}); "
                         "the importer takes models with one image input")
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ModelError(f"{path}: input {inp.name} has shape {dims}; expected an image [1,3,H,W] or [1,H,W,3]")
    if layout and dims[1 if layout == "nchw" else 3] != 3:
        raise ModelError(f"{path}: input {inp.name} {dims} is not a 3-channel {layout.upper()} image; fix --layout "
                         f"(the model looks {'NCHW' if dims[1] == 3 else 'NHWC'}) or leave it out")
    layout = layout or ("nchw" if dims[1] == 3 else "nhwc" if dims[3] == 3 else "")
    if not layout:
        raise ModelError(f"{path}: input {inp.name} {dims} has no 3-channel axis; expected [1,3,H,W] or [1,H,W,3]")
    hw = (dims[2], dims[3]) if layout == "nchw" else (dims[1], dims[2])
    if input_size is not None:
        hw = input_size
    if hw[0] is None or hw[1] is None:
        raise ModelError(f"{path}: input {inp.name} {dims} has a dynamic size; pass --input-size HxW")
    return inp.name, (int(hw[0]), int(hw[1])), layout


def build_function(path: Path, model: Any, size: tuple[int, int], layout: str,
                   outputs: list[str] | None = None) -> tuple[Any, tuple[str, ...], int]:
    """A ``tf.function`` over float32 [1, H, W, 3] computing the model's outputs (4-D ones NHWC)."""
    import tensorflow as tf

    from tools.importers.onnx_ops import Builder, Value

    consts = _constants(model)
    name = _input(path, model, consts, size, layout)[0]
    import onnx

    nodes = []
    for n in model.graph.node:  # copies: folding rewrites them
        if n.op_type != "Constant":
            nodes.append(onnx.NodeProto())
            nodes[-1].CopyFrom(n)
    nodes, folded = fold_batchnorm(nodes, consts)
    produced = {o for n in nodes for o in n.output} | {name}
    wanted = list(outputs or [o.name for o in model.graph.output])
    missing = [o for o in wanted if o not in produced]
    if missing:
        raise ModelError(f"{path}: no tensor named {', '.join(missing)}; tensors include "
                         f"{', '.join(sorted(produced)[:8])}")

    @tf.function(input_signature=[tf.TensorSpec([1, size[0], size[1], 3], tf.float32, name="image")], autograph=False)
    def fn(image: Any) -> Any:
        b = Builder(tf, consts, str(path))
        b.values[name] = Value(image, nhwc=layout == "nchw")
        for node in nodes:
            b.run(node)
            if all(o in b.values for o in wanted):
                break
        return [b.value(o).t for o in wanted]

    return fn, tuple(wanted), folded


@register("onnx")
def load_onnx(path: Path, *, input_size: tuple[int, int] | None = None, outputs: Any = None,
              layout: str | None = None, **_: Any) -> ImportedModel:
    """``layout`` ("nchw"/"nhwc") overrides the detection, for an input like [1,3,H,3]."""
    model = read_onnx(path)
    consts = _constants(model)
    size, layout = _input(path, model, consts, input_size, layout)[1:]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    fn, names, folded = build_function(path, model, size, layout, list(outputs) if outputs else None)
    concrete = fn.get_concrete_function()  # traces now: an unsupported op fails here, in one line
    notes = [f"{len(model.graph.node)} ONNX nodes, {folded} BatchNormalization folded into convolutions"]
    if layout == "nchw":
        notes.append("NCHW model: input and 4-D outputs are NHWC in the imported graph")
    return ImportedModel(path, "onnx", InputSpec(size, layout=layout), names,
                         lambda: tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn),
                         keepalive=[fn, concrete], notes=notes)
