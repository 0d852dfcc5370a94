"""Model files derived from an upstream file by rewriting its TFLite flatbuffer.

Some upstream builds end in an op we cannot run. ``strip-posenet-decoder`` turns Coral's
``posenet_*_quant_decoder_edgetpu.tflite`` (``edgetpu-custom-op`` -> ``PosenetDecoderOp``,
the second only in Coral's C++ library) into an Edge TPU model whose outputs are the
custom op's three tensors (heatmaps, short offsets, mid offsets), which edgepose's own
PoseNet decoder reads. No TensorFlow and no compiler: the flatbuffer is read with the
``tflite`` package and written with ``flatbuffers``. Everything kept is copied as it is
(the Edge TPU executable inside the custom op byte for byte); only the dropped op and the
tensors, buffers and op codes nothing uses any more go. The rewrite is deterministic, so
the registry pins the derived file's sha256 like a download's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError
from edgepose.models.tflite_info import check_tflite

POSENET_DECODER_OP = "PosenetDecoderOp"
POSENET_CHANNELS = {17: "heatmaps", 34: "short offsets", 64: "mid offsets"}
_ALIGN = 16  # TFLite aligns buffer data to 16 bytes; custom options get the same


@dataclass
class _Quant:
    scale: npt.NDArray[Any] | None = None
    zero_point: npt.NDArray[Any] | None = None
    min: npt.NDArray[Any] | None = None
    max: npt.NDArray[Any] | None = None
    quantized_dimension: int = 0


@dataclass
class _Tensor:
    shape: npt.NDArray[np.int32]
    type: int
    buffer: int
    name: bytes | None
    quant: _Quant | None
    is_variable: bool
    shape_signature: npt.NDArray[np.int32] | None
    has_rank: bool


@dataclass
class _Op:
    opcode_index: int
    inputs: list[int]
    outputs: list[int]
    intermediates: list[int]
    custom_options: bytes | None
    custom_options_format: int
    mutating_variable_inputs: npt.NDArray[np.bool_] | None


@dataclass
class _Graph:
    tensors: list[_Tensor]
    inputs: list[int]
    outputs: list[int]
    ops: list[_Op]
    name: bytes | None


@dataclass
class _Code:
    deprecated_builtin_code: int
    custom_code: bytes | None
    version: int
    builtin_code: int

    @property
    def custom(self) -> str:
        return (self.custom_code or b"").decode("utf-8", "replace")


@dataclass
class _Model:
    version: int
    description: bytes | None
    codes: list[_Code]
    graphs: list[_Graph]
    buffers: list[bytes | None]
    metadata: list[tuple[bytes | None, int]] = field(default_factory=list)


def _array(obj: Any, name: str) -> npt.NDArray[Any] | None:
    return getattr(obj, f"{name}AsNumpy")() if getattr(obj, f"{name}Length")() else None


def _ints(obj: Any, name: str) -> list[int]:
    arr = _array(obj, name)
    return [] if arr is None else [int(x) for x in arr]


def _unsupported(origin: str, what: str) -> ModelError:
    return ModelError(f"{origin}: uses {what}, which edgepose's flatbuffer rewrite does not copy; "
                      "is it the upstream file the manifest names?")


def _custom_codes(data: bytes, origin: str) -> list[str]:
    """The custom op names in a model (checked before anything is rewritten)."""
    return [c.custom for c in _read(data, origin, codes_only=True).codes if c.custom_code]


def _read(data: bytes, origin: str, codes_only: bool = False) -> _Model:
    """The parts of a TFLite model this module rewrites; refuses what it would lose."""
    import tflite

    check_tflite(data, origin)
    try:
        m = tflite.Model.GetRootAsModel(data, 0)
        if m.SignatureDefsLength() or m.MetadataBufferLength():
            raise _unsupported(origin, "signature defs or a metadata buffer list")
        codes = [_Code(c.DeprecatedBuiltinCode(), c.CustomCode(), c.Version(), c.BuiltinCode())
                 for c in (m.OperatorCodes(i) for i in range(m.OperatorCodesLength()))]
        if codes_only:
            return _Model(m.Version(), None, codes, [], [])
        buffers: list[bytes | None] = []
        for i in range(m.BuffersLength()):
            b = m.Buffers(i)
            if b.Offset() or b.Size():
                raise _unsupported(origin, f"buffer {i} stored outside the flatbuffer")
            buffers.append(b.DataAsNumpy().tobytes() if b.DataLength() else None)
        graphs = [_read_graph(m.Subgraphs(i), origin) for i in range(m.SubgraphsLength())]
        metadata = [(md.Name(), md.Buffer()) for md in (m.Metadata(i) for i in range(m.MetadataLength()))]
        return _Model(m.Version(), m.Description(), codes, graphs, buffers, metadata)
    except ModelError:
        raise
    except Exception as exc:  # flatbuffers raises IndexError/struct.error on bad data
        raise ModelError(f"{origin} is truncated or corrupt ({type(exc).__name__}); fetch it again") from None


def _read_graph(g: Any, origin: str) -> _Graph:
    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        if t.Sparsity() is not None or t.VariantTensorsLength():
            raise _unsupported(origin, f"a sparse or variant tensor ({t.Name()!r})")
        q = t.Quantization()
        quant = None
        if q is not None:
            if q.DetailsType():
                raise _unsupported(origin, f"custom quantization details ({t.Name()!r})")
            quant = _Quant(_array(q, "Scale"), _array(q, "ZeroPoint"), _array(q, "Min"), _array(q, "Max"),
                           q.QuantizedDimension())
        tensors.append(_Tensor(t.ShapeAsNumpy() if t.ShapeLength() else np.zeros(0, np.int32), t.Type(),
                               t.Buffer(), t.Name(), quant, bool(t.IsVariable()), _array(t, "ShapeSignature"),
                               bool(t.HasRank())))
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        if op.BuiltinOptionsType() or op.BuiltinOptions2Type() or op.LargeCustomOptionsSize():
            raise _unsupported(origin, f"builtin or large custom options (operator {i})")
        ops.append(_Op(op.OpcodeIndex(), _ints(op, "Inputs"), _ints(op, "Outputs"), _ints(op, "Intermediates"),
                       op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else None,
                       op.CustomOptionsFormat(), _array(op, "MutatingVariableInputs")))
    return _Graph(tensors, _ints(g, "Inputs"), _ints(g, "Outputs"), ops, g.Name())


def _prune(model: _Model) -> _Model:
    """Drop tensors, buffers and op codes nothing refers to; renumber the rest in order."""
    used_codes = sorted({op.opcode_index for g in model.graphs for op in g.ops})
    code_map = {old: new for new, old in enumerate(used_codes)}
    used_buffers = {0} | {b for _, b in model.metadata}  # buffer 0 is TFLite's empty sentinel
    graphs = []
    for g in model.graphs:
        used = set(g.inputs) | set(g.outputs)
        for op in g.ops:
            used |= set(op.inputs) | set(op.outputs) | set(op.intermediates)
        used.discard(-1)  # an omitted optional input
        keep = sorted(used)
        t_map = {old: new for new, old in enumerate(keep)}
        def remap(ids: Any, t_map: dict[int, int] = t_map) -> list[int]:
            return [t_map.get(i, -1) if i >= 0 else -1 for i in ids]

        tensors = [g.tensors[i] for i in keep]
        used_buffers |= {t.buffer for t in tensors}
        ops = [_Op(code_map[op.opcode_index], remap(op.inputs), remap(op.outputs), remap(op.intermediates),
                   op.custom_options, op.custom_options_format, op.mutating_variable_inputs) for op in g.ops]
        graphs.append(_Graph(tensors, remap(g.inputs), remap(g.outputs), ops, g.name))
    b_map = {old: new for new, old in enumerate(sorted(used_buffers))}
    for g in graphs:
        g.tensors = [_Tensor(t.shape, t.type, b_map[t.buffer], t.name, t.quant, t.is_variable,
                             t.shape_signature, t.has_rank) for t in g.tensors]
    return _Model(model.version, model.description, [model.codes[i] for i in used_codes], graphs,
                  [model.buffers[i] for i in sorted(used_buffers)],
                  [(name, b_map[b]) for name, b in model.metadata])


class _Writer:
    """Serialises a ``_Model`` with ``flatbuffers.Builder`` and the ``tflite`` table helpers."""

    def __init__(self, size_hint: int) -> None:
        import flatbuffers
        import tflite

        self.b = flatbuffers.Builder(size_hint)
        self.tfl = tflite  # the generated table helpers (TensorStart, TensorAddShape...)

    def bytes_(self, data: bytes, alignment: int = _ALIGN) -> int:
        b = self.b
        b.StartVector(1, len(data), alignment)
        b.head -= len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        return int(b.EndVector())

    def numbers(self, values: Any, dtype: Any) -> int:
        return int(self.b.CreateNumpyVector(np.asarray(values, dtype=dtype)))

    def offsets(self, items: list[int]) -> int:
        b = self.b
        b.StartVector(4, len(items), 4)
        for off in reversed(items):
            b.PrependUOffsetTRelative(off)
        return int(b.EndVector())

    def string(self, s: bytes | None) -> int | None:
        return None if s is None else int(self.b.CreateString(s))

    def quant(self, q: _Quant) -> int:
        tfl = self.tfl
        vecs = {k: None if v is None else int(self.b.CreateNumpyVector(v))
                for k, v in (("min", q.min), ("max", q.max), ("scale", q.scale), ("zero_point", q.zero_point))}
        tfl.QuantizationParametersStart(self.b)
        for key, add in (("min", tfl.QuantizationParametersAddMin), ("max", tfl.QuantizationParametersAddMax),
                         ("scale", tfl.QuantizationParametersAddScale),
                         ("zero_point", tfl.QuantizationParametersAddZeroPoint)):
            if vecs[key] is not None:
                add(self.b, vecs[key])
        tfl.QuantizationParametersAddQuantizedDimension(self.b, q.quantized_dimension)
        return int(tfl.QuantizationParametersEnd(self.b))

    def tensor(self, t: _Tensor) -> int:
        tfl = self.tfl
        shape = self.numbers(t.shape, np.int32)
        sig = None if t.shape_signature is None else self.numbers(t.shape_signature, np.int32)
        name = self.string(t.name)
        quant = None if t.quant is None else self.quant(t.quant)
        tfl.TensorStart(self.b)
        tfl.TensorAddShape(self.b, shape)
        tfl.TensorAddType(self.b, t.type)
        tfl.TensorAddBuffer(self.b, t.buffer)
        if name is not None:
            tfl.TensorAddName(self.b, name)
        if quant is not None:
            tfl.TensorAddQuantization(self.b, quant)
        tfl.TensorAddIsVariable(self.b, t.is_variable)
        if sig is not None:
            tfl.TensorAddShapeSignature(self.b, sig)
        tfl.TensorAddHasRank(self.b, t.has_rank)
        return int(tfl.TensorEnd(self.b))

    def op(self, op: _Op) -> int:
        tfl = self.tfl
        ins, outs = self.numbers(op.inputs, np.int32), self.numbers(op.outputs, np.int32)
        inter = self.numbers(op.intermediates, np.int32) if op.intermediates else None
        custom = None if op.custom_options is None else self.bytes_(op.custom_options)
        mutating = None if op.mutating_variable_inputs is None else self.numbers(op.mutating_variable_inputs, np.bool_)
        tfl.OperatorStart(self.b)
        tfl.OperatorAddOpcodeIndex(self.b, op.opcode_index)
        tfl.OperatorAddInputs(self.b, ins)
        tfl.OperatorAddOutputs(self.b, outs)
        if custom is not None:
            tfl.OperatorAddCustomOptions(self.b, custom)
        tfl.OperatorAddCustomOptionsFormat(self.b, op.custom_options_format)
        if mutating is not None:
            tfl.OperatorAddMutatingVariableInputs(self.b, mutating)
        if inter is not None:
            tfl.OperatorAddIntermediates(self.b, inter)
        return int(tfl.OperatorEnd(self.b))

    def graph(self, g: _Graph) -> int:
        tfl = self.tfl
        tensors = self.offsets([self.tensor(t) for t in g.tensors])
        ins, outs = self.numbers(g.inputs, np.int32), self.numbers(g.outputs, np.int32)
        ops = self.offsets([self.op(op) for op in g.ops])
        name = self.string(g.name)
        tfl.SubGraphStart(self.b)
        tfl.SubGraphAddTensors(self.b, tensors)
        tfl.SubGraphAddInputs(self.b, ins)
        tfl.SubGraphAddOutputs(self.b, outs)
        tfl.SubGraphAddOperators(self.b, ops)
        if name is not None:
            tfl.SubGraphAddName(self.b, name)
        return int(tfl.SubGraphEnd(self.b))

    def code(self, c: _Code) -> int:
        tfl = self.tfl
        custom = self.string(c.custom_code)
        tfl.OperatorCodeStart(self.b)
        tfl.OperatorCodeAddDeprecatedBuiltinCode(self.b, c.deprecated_builtin_code)
        if custom is not None:
            tfl.OperatorCodeAddCustomCode(self.b, custom)
        tfl.OperatorCodeAddVersion(self.b, c.version)
        tfl.OperatorCodeAddBuiltinCode(self.b, c.builtin_code)
        return int(tfl.OperatorCodeEnd(self.b))

    def buffer(self, data: bytes | None) -> int:
        tfl = self.tfl
        vec = None if data is None else self.bytes_(data)
        tfl.BufferStart(self.b)
        if vec is not None:
            tfl.BufferAddData(self.b, vec)
        return int(tfl.BufferEnd(self.b))

    def metadata(self, name: bytes | None, buffer: int) -> int:
        tfl = self.tfl
        s = self.string(name)
        tfl.MetadataStart(self.b)
        if s is not None:
            tfl.MetadataAddName(self.b, s)
        tfl.MetadataAddBuffer(self.b, buffer)
        return int(tfl.MetadataEnd(self.b))

    def model(self, m: _Model) -> bytes:
        tfl = self.tfl
        buffers = self.offsets([self.buffer(d) for d in m.buffers])  # the big vectors first
        graphs = self.offsets([self.graph(g) for g in m.graphs])
        codes = self.offsets([self.code(c) for c in m.codes])
        metadata = self.offsets([self.metadata(n, b) for n, b in m.metadata]) if m.metadata else None
        description = self.string(m.description)
        tfl.ModelStart(self.b)
        tfl.ModelAddVersion(self.b, m.version)
        tfl.ModelAddOperatorCodes(self.b, codes)
        tfl.ModelAddSubgraphs(self.b, graphs)
        if description is not None:
            tfl.ModelAddDescription(self.b, description)
        tfl.ModelAddBuffers(self.b, buffers)
        if metadata is not None:
            tfl.ModelAddMetadata(self.b, metadata)
        self.b.Finish(tfl.ModelEnd(self.b), file_identifier=b"TFL3")
        return bytes(self.b.Output())


def strip_posenet_decoder(data: bytes, origin: str = "model") -> bytes:
    """Coral's PoseNet decoder build without ``PosenetDecoderOp``: the decoder's three
    inputs become the graph's outputs (heatmaps, short offsets, mid offsets, in that order)."""
    customs = _custom_codes(data, origin)
    if POSENET_DECODER_OP not in customs:
        raise ModelError(f"{origin}: no {POSENET_DECODER_OP} to strip (custom ops: {', '.join(customs) or 'none'}); "
                         "expected Coral's *_quant_decoder_edgetpu.tflite")
    model = _read(data, origin)
    if len(model.graphs) != 1:
        raise ModelError(f"{origin}: {len(model.graphs)} subgraphs; Coral's PoseNet decoder build has one")
    g = model.graphs[0]
    decoders = [i for i, op in enumerate(g.ops) if model.codes[op.opcode_index].custom == POSENET_DECODER_OP]
    if len(decoders) != 1:
        raise ModelError(f"{origin}: {len(decoders)} {POSENET_DECODER_OP} ops; Coral's decoder build has one")
    dec = g.ops[decoders[0]]
    if sorted(g.outputs) != sorted(dec.outputs):
        raise ModelError(f"{origin}: the graph outputs are not {POSENET_DECODER_OP}'s; cannot strip it")
    by_channels = {int(g.tensors[i].shape[-1]): i for i in dec.inputs if len(g.tensors[i].shape) == 4}
    if sorted(by_channels) != sorted(POSENET_CHANNELS):
        found = [list(g.tensors[i].shape) for i in dec.inputs]
        raise ModelError(f"{origin}: {POSENET_DECODER_OP} reads {found}; expected [1, h, w, c] tensors with "
                         f"c = 17, 34 and 64 (heatmaps, short and mid offsets)")
    g.ops = [op for i, op in enumerate(g.ops) if i != decoders[0]]
    g.outputs = [by_channels[c] for c in sorted(POSENET_CHANNELS)]
    produced = {t for op in g.ops for t in op.outputs}
    if not set(g.outputs) <= produced:
        raise ModelError(f"{origin}: the decoder's inputs are not produced by another op; cannot strip it")
    return _Writer(len(data) + 4096).model(_prune(model))


DERIVATIONS: dict[str, Callable[[bytes, str], bytes]] = {"strip-posenet-decoder": strip_posenet_decoder}
DERIVE_KINDS = tuple(DERIVATIONS)


def derive(kind: str, data: bytes, origin: str = "model") -> bytes:
    """Apply the derivation ``kind`` (one of ``DERIVE_KINDS``) to a model file's bytes."""
    if kind not in DERIVATIONS:
        raise ModelError(f"unknown derivation {kind!r}; expected one of {', '.join(DERIVE_KINDS)}")
    return DERIVATIONS[kind](data, origin)
