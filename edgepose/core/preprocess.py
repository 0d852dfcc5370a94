"""Resize frames for a model and return the transform back to source pixels.

Mapping model coordinates back to the source frame happens in exactly one place:
``Transform.to_source``. A crop followed by a resize is one ``Transform`` too
(``Transform.for_crop(...).then(resize_transform)``), so a model run on a person crop
maps back to the frame the same way as one run on the whole frame.

The pixel work lives here too: ``resize`` (whole frames), ``warp`` (a frame seen through
any ``Transform``, e.g. a person crop at a model's size) and ``paste`` (a frame placed on
a canvas: letterbox bands, or a crop reaching past the frame's edges, zero-filled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError
from edgepose.core.opencv import optional_cv2

ResizeMode = Literal["letterbox", "stretch", "crop"]
Interpolation = Literal["bilinear", "nearest"]
RESIZE_MODES = ("letterbox", "stretch", "crop")


@dataclass(frozen=True)
class Transform:
    """Maps model-input pixels to source pixels: ``src = (model - offset) / scale``.

    ``scale_*`` is model pixels per source pixel, ``offset_*`` is where the source
    origin lands in model pixels (positive for letterbox padding, negative for a crop).
    """

    scale_x: float = 1.0
    scale_y: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0
    source_size: tuple[int, int] = (0, 0)  # (height, width)
    model_size: tuple[int, int] = (0, 0)   # (height, width)

    def to_source(self, xy: npt.ArrayLike) -> npt.NDArray[np.float32]:
        a = np.asarray(xy, dtype=np.float32)
        out = np.empty_like(a)
        out[..., 0] = (a[..., 0] - self.offset_x) / self.scale_x
        out[..., 1] = (a[..., 1] - self.offset_y) / self.scale_y
        return out

    def to_model(self, xy: npt.ArrayLike) -> npt.NDArray[np.float32]:
        a = np.asarray(xy, dtype=np.float32)
        out = np.empty_like(a)
        out[..., 0] = a[..., 0] * self.scale_x + self.offset_x
        out[..., 1] = a[..., 1] * self.scale_y + self.offset_y
        return out

    @classmethod
    def identity(cls, height: int, width: int) -> Transform:
        return cls(1.0, 1.0, 0.0, 0.0, (height, width), (height, width))

    @classmethod
    def for_crop(cls, x0: float, y0: float, x1: float, y1: float, size: tuple[int, int],
                 source_size: tuple[int, int] = (0, 0)) -> Transform:
        """The region x0..x1, y0..y1 of the source (pixels; it may reach past the edges)
        resized to ``size`` = (height, width)."""
        if not (x1 > x0 and y1 > y0):
            raise ModelError(f"crop region ({x0}, {y0}, {x1}, {y1}) is empty")
        sx, sy = size[1] / (x1 - x0), size[0] / (y1 - y0)
        return cls(sx, sy, -x0 * sx, -y0 * sy, source_size, (int(size[0]), int(size[1])))

    def then(self, other: Transform) -> Transform:
        """This transform followed by ``other`` (which maps this one's model pixels
        onward, e.g. a crop then the model's resize): source -> ``other``'s model."""
        return Transform(self.scale_x * other.scale_x, self.scale_y * other.scale_y,
                         self.offset_x * other.scale_x + other.offset_x,
                         self.offset_y * other.scale_y + other.offset_y,
                         self.source_size, other.model_size)


def check_rgb(image: npt.NDArray[np.uint8]) -> None:
    """Refuse anything but an RGB (H, W, 3) frame, in one line."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ModelError(f"expected an RGB frame of shape (H, W, 3), got {image.shape}")


def _resize(image: npt.NDArray[np.uint8], w: int, h: int, interp: Interpolation) -> npt.NDArray[np.uint8]:
    if image.shape[0] == h and image.shape[1] == w:
        return image
    cv2 = optional_cv2()  # the fast path where installed (the core install has none: PIL then)
    if cv2 is not None:
        # INTER_NEAREST_EXACT picks the same pixels as PIL's NEAREST (what Coral's references used).
        flag = cv2.INTER_NEAREST_EXACT if interp == "nearest" else cv2.INTER_LINEAR
        return np.asarray(cv2.resize(image, (w, h), interpolation=flag), np.uint8)
    from PIL import Image

    flag = Image.Resampling.NEAREST if interp == "nearest" else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((w, h), flag))


def warp(image: npt.NDArray[np.uint8], t: Transform,
         interpolation: Interpolation = "bilinear") -> npt.NDArray[np.uint8]:
    """``image`` resampled into ``t``'s model pixels (``t.model_size``) in one pass: each
    output pixel's centre sampled through ``t``, zeros where it falls outside the image."""
    h, w = t.model_size
    cv2 = optional_cv2()  # the fast path where installed (the core install has none: PIL then)
    if cv2 is not None:
        # Output pixel centre u + 0.5 comes from source (u + 0.5 - offset) / scale, i.e.
        # source pixel index u / scale + (0.5 - offset) / scale - 0.5.
        inv = np.array([[1 / t.scale_x, 0, (0.5 - t.offset_x) / t.scale_x - 0.5],
                        [0, 1 / t.scale_y, (0.5 - t.offset_y) / t.scale_y - 0.5]], np.float64)
        flag = cv2.INTER_NEAREST if interpolation == "nearest" else cv2.INTER_LINEAR
        return np.asarray(cv2.warpAffine(image, inv, (w, h), flags=flag | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)), np.uint8)
    # Without OpenCV: PIL's affine transform samples the same way (continuous
    # coordinates, pixel centres at +0.5, zeros outside).
    from PIL import Image

    data = (1 / t.scale_x, 0.0, -t.offset_x / t.scale_x, 0.0, 1 / t.scale_y, -t.offset_y / t.scale_y)
    flag = Image.Resampling.NEAREST if interpolation == "nearest" else Image.Resampling.BILINEAR
    out = Image.fromarray(image).transform((w, h), Image.Transform.AFFINE, data, resample=flag,
                                        fillcolor=(0, 0, 0))
    return np.asarray(out)


def paste(image: npt.NDArray[np.uint8], size: tuple[int, int], offset: tuple[int, int],
          fill: int = 0) -> npt.NDArray[np.uint8]:
    """A ``size`` = (height, width) canvas of ``fill`` with ``image`` placed with its
    origin at ``offset`` = (x, y) of the canvas; either may reach past the other (a
    negative offset cuts the image): only the overlap is copied."""
    h, w = size
    ox, oy = offset
    ih, iw = image.shape[:2]
    out = np.full((h, w, 3), fill, np.uint8)
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + iw, w), min(oy + ih, h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = image[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return out


def resize(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    mode: ResizeMode = "letterbox",
    interpolation: Interpolation = "bilinear",
    pad_value: int = 0,
) -> tuple[npt.NDArray[np.uint8], Transform]:
    """Resize an RGB (H, W, 3) uint8 frame to ``size`` = (height, width).

    ``letterbox`` keeps the aspect ratio and pads, ``stretch`` ignores it, ``crop``
    keeps it and cuts the centre. Returns the resized frame and its Transform.
    """
    check_rgb(image)
    sh, sw = image.shape[:2]
    mh, mw = size
    if mode not in RESIZE_MODES:
        raise ModelError(f"unknown resize mode {mode!r}; expected one of {', '.join(RESIZE_MODES)}")
    if (sh, sw) == (mh, mw):  # e.g. a crop cut at the model's size: nothing to resample or pad
        return image, Transform(1.0, 1.0, 0.0, 0.0, (sh, sw), (mh, mw))
    if mode == "stretch":
        sx, sy = mw / sw, mh / sh
        return _resize(image, mw, mh, interpolation), Transform(sx, sy, 0.0, 0.0, (sh, sw), (mh, mw))
    s = min(mw / sw, mh / sh) if mode == "letterbox" else max(mw / sw, mh / sh)
    rw, rh = max(1, round(sw * s)), max(1, round(sh * s))
    ox, oy = (mw - rw) // 2, (mh - rh) // 2
    out = paste(_resize(image, rw, rh, interpolation), (mh, mw), (ox, oy), pad_value)
    # Effective per-axis scale (rounding of rw, rh) so the mapping is exact at the edges.
    return out, Transform(rw / sw, rh / sh, float(ox), float(oy), (sh, sw), (mh, mw))


def to_input_tensor(
    image: npt.NDArray[np.uint8],
    dtype: np.dtype | type,
    quantization: tuple[float, int] = (0.0, 0),
    mean: float | tuple[float, ...] | None = None,
    std: float | tuple[float, ...] | None = None,
    channels: str = "rgb",
) -> npt.NDArray[np.generic]:
    """Turn a resized uint8 frame into the model's input tensor (batch of one).

    ``mean``/``std`` describe the float input the model was trained on:
    ``value = (pixel - mean) / std``. When they are None the model takes raw pixels
    (uint8 as is; int8 shifted by 128; float as 0..255).
    For quantized inputs with mean/std, the float value is quantized with the input's
    scale and zero point. ``channels="bgr"`` feeds the RGB frame's channels reversed (a
    model trained on OpenCV frames); ``mean``/``std`` are then in BGR order too.
    """
    dt = np.dtype(dtype)
    batch = image[None, ..., ::-1] if channels == "bgr" else image[None, ...]
    if mean is None and std is None:
        if dt == np.uint8:
            return np.ascontiguousarray(batch)
        if dt == np.int8:
            return (batch.astype(np.int16) - 128).astype(np.int8)
        return batch.astype(dt)
    m = np.asarray(0.0 if mean is None else mean, np.float32)
    s = np.asarray(1.0 if std is None else std, np.float32)
    value = (batch.astype(np.float32) - m) / s
    if dt.kind == "f":
        return value.astype(dt)
    scale, zero = quantization
    if not scale:
        raise ModelError(f"input is {dt.name} but has no quantization parameters")
    info = np.iinfo(dt)
    q = np.round(value / scale + zero)
    return np.clip(q, info.min, info.max).astype(dt)
