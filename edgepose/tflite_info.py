"""Read what edgepose needs from a .tflite flatbuffer without loading an interpreter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgepose.errors import ModelError

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


def read_model_bytes(path: Path) -> bytes:
    """The file's bytes, after checking it is a non-empty TFLite flatbuffer."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file {path} not found") from None
    except IsADirectoryError:
        raise ModelError(f"model {path} is a directory; give a .tflite file") from None
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}") from None
    if not data:
        raise ModelError(f"model file {path} is empty (0 bytes); download it again")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite model (no TFL3 identifier); give a .tflite file")
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


def is_edgetpu_model(path: str | Path) -> bool:
    """True when the model contains the ``edgetpu-custom-op`` (compiled for the Edge TPU)."""
    return read_model_info(path).edgetpu
