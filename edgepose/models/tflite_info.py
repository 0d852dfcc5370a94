"""Read what edgepose needs from a .tflite flatbuffer without loading an interpreter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepose.core.errors import ModelError
from edgepose.core.limits import MAX_MODEL_BYTES, read_bounded

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8"}


@dataclass(frozen=True)
class ModelInfo:
    input_size: tuple[int, int]  # (height, width) of the first input
    input_dtype: str
    custom_ops: tuple[str, ...]

    @property
    def edgetpu(self) -> bool:
        return EDGETPU_CUSTOM_OP in self.custom_ops


def check_tflite(data: bytes, origin: str, hint: str = "") -> None:
    """ModelError unless ``data`` carries the TFLite flatbuffer identifier (TFL3)."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{origin} is not a TFLite model (no TFL3 identifier){hint}")


def read_model_bytes(path: Path) -> bytes:
    """The file's bytes, after checking it is a regular file of at most
    ``MAX_MODEL_BYTES`` and a non-empty TFLite flatbuffer."""
    if Path(path).is_dir():
        raise ModelError(f"model {path} is a directory; give a .tflite file")
    data = read_bounded(path, "model file", ModelError, max_bytes=MAX_MODEL_BYTES,
                        fix="give a .tflite file")
    if not data:
        raise ModelError(f"model file {path} is empty (0 bytes); download it again")
    check_tflite(data, str(path), "; give a .tflite file")
    return data


def read_model_info(path: str | Path) -> ModelInfo:
    p = Path(path)
    data = read_model_bytes(p)
    try:
        import tflite

        model = tflite.Model.GetRootAsModel(data, 0)
        customs = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            if code.CustomCode():
                customs.append(code.CustomCode().decode("utf-8", "replace"))
        graph = model.Subgraphs(0)
        tensor = graph.Tensors(graph.Inputs(0))
        shape = tensor.ShapeAsNumpy()
        dtype = _TENSOR_TYPES.get(tensor.Type(), str(tensor.Type()))
        # Touch every buffer offset so a truncated file fails here, not in C++.
        last = model.BuffersLength()
        for i in range(last):
            buf = model.Buffers(i)
            if buf is not None and buf.Offset() and buf.Offset() + buf.Size() > len(data):
                raise IndexError("buffer beyond end of file")
            if buf is not None and buf.DataLength():
                buf.DataAsNumpy()
    except ModelError:
        raise
    except Exception as exc:  # flatbuffers raises IndexError/struct.error on bad data
        raise ModelError(f"{p} is truncated or corrupt ({type(exc).__name__}); download it again") from None
    if len(shape) != 4:
        raise ModelError(f"{p}: input shape {list(shape)} is not [1, H, W, 3]; edgepose needs an image model")
    return ModelInfo(input_size=(int(shape[1]), int(shape[2])), input_dtype=dtype, custom_ops=tuple(customs))


# --- Edge TPU parameter caching -------------------------------------------------------
# The custom op's options are a FlexBuffer map (libedgetpu tflite/custom_op_data.cc):
# "4" holds the serialized executable package, "7" more of them (one per chip). A package
# (executable/executable.fbs, identifier "DWN1") wraps a MultiExecutable whose executables
# carry a type and a uint64 parameter_caching_token. libedgetpu (driver/driver.cc) keeps
# the parameters cached on the chip only while consecutive requests carry the same
# non-zero token: models co-compiled in one edgetpu_compiler call share it; models
# compiled separately get different ones, so switching between them reloads the cache.
EXECUTABLE_TYPES = {0: "stand-alone", 1: "parameter-caching", 2: "execution-only"}
_PACKAGE_MULTI_EXECUTABLE, _MULTI_EXECUTABLES = 1, 0  # field slots in executable.fbs
_EXEC_TYPE, _EXEC_TOKEN, _EXEC_PARAMETERS = 13, 14, 6


@dataclass(frozen=True)
class EdgeTpuExecutable:
    """One executable inside an ``edgetpu-custom-op``."""

    kind: str  # one of EXECUTABLE_TYPES' values
    caching_token: int
    parameter_bytes: int


def _fb_root(buf: bytes) -> object:
    from flatbuffers import encode, packer, table

    return table.Table(buf, encode.Get(packer.uoffset, buf, 0))


def _fb_field(t: object, slot: int) -> int:
    return int(t.Offset(4 + 2 * slot))  # type: ignore[attr-defined]


def _fb_bytes(t: object, slot: int) -> bytes:
    o = _fb_field(t, slot)
    if not o:
        return b""
    start = t.Vector(o)  # type: ignore[attr-defined]
    return bytes(t.Bytes[start:start + t.VectorLen(o)])  # type: ignore[attr-defined]


def _executables(package: bytes) -> list[EdgeTpuExecutable]:
    from flatbuffers import number_types as N

    if package[4:8] != b"DWN1":
        raise ValueError("not an Edge TPU executable package")
    multi = _fb_root(_fb_bytes(_fb_root(package), _PACKAGE_MULTI_EXECUTABLE))
    o = _fb_field(multi, _MULTI_EXECUTABLES)
    out = []
    for i in range(multi.VectorLen(o) if o else 0):  # type: ignore[attr-defined]
        ex = _fb_root(multi.String(multi.Vector(o) + 4 * i))  # type: ignore[attr-defined]
        kind, token = _fb_field(ex, _EXEC_TYPE), _fb_field(ex, _EXEC_TOKEN)
        kind_value = ex.Get(N.Int16Flags, kind + ex.Pos) if kind else 0  # type: ignore[attr-defined]
        token_value = ex.Get(N.Uint64Flags, token + ex.Pos) if token else 0  # type: ignore[attr-defined]
        out.append(EdgeTpuExecutable(EXECUTABLE_TYPES.get(kind_value, "unknown"), int(token_value),
                                     len(_fb_bytes(ex, _EXEC_PARAMETERS))))
    return out


def edgetpu_executables(path: str | Path) -> list[list[EdgeTpuExecutable]]:
    """Per ``edgetpu-custom-op`` of the model, the executables it carries ([] for a CPU model)."""
    import tflite
    from flatbuffers import flexbuffers

    p = Path(path)
    data = read_model_bytes(p)
    ops: list[list[EdgeTpuExecutable]] = []
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            for i in range(graph.OperatorsLength()):
                op = graph.Operators(i)
                if model.OperatorCodes(op.OpcodeIndex()).CustomCode() != EDGETPU_CUSTOM_OP.encode():
                    continue
                options = flexbuffers.GetRoot(op.CustomOptionsAsNumpy().tobytes()).AsMap
                keys = {k.AsKey for k in options.Keys}
                packages = [options["4"]] + (list(options["7"].AsVector) if "7" in keys else [])
                ops.append([ex for ref in packages
                            for ex in _executables(bytes(ref.AsBlob if ref.IsBlob else ref.AsStringBytes))])
    except Exception as exc:
        raise ModelError(f"{p}: cannot read its Edge TPU executable ({type(exc).__name__}: {exc}); "
                         "is it a file edgetpu_compiler wrote? compile it again") from None
    return ops


def parameter_caching_tokens(path: str | Path) -> tuple[int, ...]:
    """The caching token of each Edge TPU op's executable that runs inferences (0: none)."""
    return tuple(next((ex.caching_token for ex in op if ex.kind != "parameter-caching"), 0)
                 for op in edgetpu_executables(path))


def co_compiled(*paths: str | Path) -> bool:
    """True when every Edge TPU op of these models carries one shared non-zero caching
    token, i.e. they were co-compiled and keep their parameters cached side by side."""
    tokens = [t for p in paths for t in (parameter_caching_tokens(p) or (0,))]
    return len(set(tokens)) == 1 and tokens[0] != 0


def co_compilation_warning(paths: Sequence[str | Path]) -> str | None:
    """One line for ``edgepose doctor`` and the run log when the Edge TPU models loaded
    together were not co-compiled; None when they were, or when fewer than two are Edge TPU models."""
    tpu = [Path(p) for p in paths if read_model_info(p).edgetpu]
    if len(tpu) < 2 or co_compiled(*tpu):
        return None
    tokens = " / ".join(" ".join(f"{t:#x}" for t in parameter_caching_tokens(p)) for p in tpu)
    return (f"{' and '.join(p.name for p in tpu)} were compiled separately (caching tokens {tokens}): the "
            "Edge TPU reloads their parameters on every switch; co-compile their CPU models in one "
            "`edgepose-tools compile A.tflite B.tflite` call to share the on-chip cache")
