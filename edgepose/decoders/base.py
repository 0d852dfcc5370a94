"""What every decoder takes: raw output tensors with their quantization parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import numpy.typing as npt

from edgepose.errors import ModelError
from edgepose.pose import Poses
from edgepose.preprocess import Transform


@dataclass(frozen=True)
class OutputTensor:
    """One model output as the interpreter gave it, plus its quantization parameters."""

    data: npt.NDArray[Any]
    scale: float = 0.0
    zero_point: int = 0
    name: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def dequantize(self) -> npt.NDArray[np.float32]:
        if self.data.dtype.kind == "f" or not self.scale:
            return self.data.astype(np.float32, copy=False)
        return (self.data.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)


class Decoder(Protocol):
    """``decode(outputs, transform, **params) -> Poses`` with keypoints in source pixels.

    ``transform.model_size`` is the model input (height, width); decoders work in
    model-input pixels and map back with ``transform.to_source`` once.
    """

    def __call__(self, outputs: Sequence[OutputTensor], transform: Transform, **params: Any) -> Poses: ...


def as_outputs(arrays: Sequence[npt.ArrayLike | OutputTensor]) -> list[OutputTensor]:
    """Wrap plain float arrays (e.g. saved tensors) as OutputTensors."""
    return [a if isinstance(a, OutputTensor) else OutputTensor(np.asarray(a)) for a in arrays]


def outputs_error(decoder: str, outputs: Sequence[OutputTensor], expected: str) -> ModelError:
    shapes = ", ".join(str(list(o.shape)) for o in outputs) or "none"
    return ModelError(
        f"model outputs {shapes} don't fit decoder {decoder!r}: expected {expected}; "
        "pick the right decoder in the model's manifest (or --decoder)"
    )
