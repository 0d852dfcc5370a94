"""What every importer returns: one TF graph behind a TFLite converter, and the input semantics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("keras", "savedmodel", "tfjs", "onnx", "torch", "tflite")
CHANNEL_ORDERS = ("rgb", "bgr")
LAYOUTS = ("nhwc", "nchw")


@dataclass(frozen=True)
class InputSpec:
    """How the model wants its image: the graph's input after import is always float32
    [1, H, W, 3] NHWC; ``layout`` records the original model's layout (an NCHW model gets a
    transpose in front). Pixels go in as ``(rgb_or_bgr_0_255 - mean) / std``; ``None`` mean/std
    means raw 0..255 pixels."""

    size: tuple[int, int]  # (h, w)
    channels: str = "rgb"
    layout: str = "nhwc"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_ORDERS:
            raise ValueError(f"channels {self.channels!r}: expected one of {', '.join(CHANNEL_ORDERS)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r}: expected one of {', '.join(LAYOUTS)}")


@dataclass
class ImportedModel:
    """A model brought into TensorFlow: ``make_converter()`` returns a fresh
    ``tf.lite.TFLiteConverter`` for its graph (float by default; the caller sets the int8
    options). ``keepalive`` holds whatever must outlive the converter (a Keras model, a
    wrapped graph); ``notes`` says what the import did (e.g. "split 54 fused ops").
    ``float_tail``: graph node names of a post-processing tail (argmax, gathers) that must stay
    float when the rest is quantized to int8 (empty: quantize everything)."""

    source: Path
    fmt: str
    input: InputSpec
    output_names: tuple[str, ...]
    make_converter: Callable[[], Any]
    keepalive: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    float_tail: tuple[str, ...] = ()
