"""What every decoder takes: raw output tensors with their quantization parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform


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


def check_params(decoder: str, params: dict[str, Any], known: Sequence[str]) -> None:
    """Reject decoder parameters the decoder does not know (a typo in a manifest)."""
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"decoder {decoder!r} has no parameter {unknown[0]!r}; "
            f"expected some of {', '.join(sorted(known))} (fix [decoder_params] in the manifest)"
        )


def check_schema(decoder: str, schema: str, supported: Sequence[str]) -> None:
    """Fixed-layout decoders (MoveNet, PoseNet) only produce one keypoint schema."""
    if schema not in supported:
        raise ConfigError(
            f"decoder {decoder!r} produces {' or '.join(supported)} keypoints, not schema "
            f"{schema!r}; set schema = \"{supported[0]}\" in the model's manifest"
        )


def int_param(decoder: str, params: dict[str, Any], name: str, default: int, minimum: int) -> int:
    """``params[name]`` (else ``default``) as an integer >= ``minimum``; a ConfigError
    naming it otherwise (``true`` is not an integer here, though Python says so)."""
    v = params.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ConfigError(f"{decoder}: {name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def number_param(decoder: str, params: dict[str, Any], name: str, default: float,
                 fits: Callable[[float], bool], expected: str) -> float:
    """``params[name]`` (else ``default``) as a float that ``fits``; a ConfigError saying
    it must be ``expected`` otherwise."""
    v = params.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not fits(v):
        raise ConfigError(f"{decoder}: {name} must be {expected}, got {v!r}")
    return float(v)


def by_channels(
    decoder: str, outputs: Sequence[OutputTensor], channels: Sequence[int], expected: str
) -> list[OutputTensor]:
    """Pick one 4-D [1, h, w, c] output per wanted channel count (order-independent).

    All picked outputs must share the same h and w; anything else is an ``outputs_error``.
    """
    picked = []
    for c in channels:
        found = [o for o in outputs if len(o.shape) == 4 and o.shape[0] == 1 and o.shape[3] == c]
        if len(found) != 1:
            raise outputs_error(decoder, outputs, expected)
        picked.append(found[0])
    if len({o.shape[1:3] for o in picked}) != 1:
        raise outputs_error(decoder, outputs, expected)
    return picked


def model_size(decoder: str, transform: Transform) -> tuple[int, int]:
    """The model input (height, width) the transform was made for."""
    h, w = transform.model_size
    if h <= 0 or w <= 0:
        raise ConfigError(
            f"decoder {decoder!r} got a Transform without model_size ({h}, {w}); "
            "make it with edgepose.core.preprocess.resize or Transform.identity(h, w)"
        )
    return int(h), int(w)
