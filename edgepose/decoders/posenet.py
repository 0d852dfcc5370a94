"""PoseNet (MobileNet v1 backbones, Coral builds): output layout and single-pose decoding.

The backbone gives three maps on a grid of output stride ``s`` (16 for Coral's models),
where grid cell (i, j) sits at input pixel (x, y) = (j * s, i * s):

- heatmaps ``[1, h, w, 17]``: keypoint logits (score = sigmoid);
- short offsets ``[1, h, w, 34]``: input-pixel offset from the cell to the keypoint,
  the 17 y offsets first, then the 17 x offsets;
- mid offsets ``[1, h, w, 64]``: displacement from one keypoint to the next along the
  16 skeleton edges of ``EDGES``: forward y (16), forward x (16), backward y (16),
  backward x (16), as in tfjs-models posenet and Coral's PosenetDecoderOp.

The outputs are told apart by channel count, never by their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.core.schemas import Coco
from edgepose.decoders.base import (
    OutputTensor,
    by_channels,
    check_params,
    check_schema,
    outputs_error,
)

NUM_KEYPOINTS = 17
C = Coco
# Parent -> child edges of the PoseNet skeleton tree (the tfjs "poseChain" order).
EDGES: tuple[tuple[int, int], ...] = tuple((int(a), int(b)) for a, b in (
    (C.NOSE, C.LEFT_EYE), (C.LEFT_EYE, C.LEFT_EAR), (C.NOSE, C.RIGHT_EYE),
    (C.RIGHT_EYE, C.RIGHT_EAR), (C.NOSE, C.LEFT_SHOULDER), (C.LEFT_SHOULDER, C.LEFT_ELBOW),
    (C.LEFT_ELBOW, C.LEFT_WRIST), (C.LEFT_SHOULDER, C.LEFT_HIP), (C.LEFT_HIP, C.LEFT_KNEE),
    (C.LEFT_KNEE, C.LEFT_ANKLE), (C.NOSE, C.RIGHT_SHOULDER), (C.RIGHT_SHOULDER, C.RIGHT_ELBOW),
    (C.RIGHT_ELBOW, C.RIGHT_WRIST), (C.RIGHT_SHOULDER, C.RIGHT_HIP),
    (C.RIGHT_HIP, C.RIGHT_KNEE), (C.RIGHT_KNEE, C.RIGHT_ANKLE),
))
NUM_EDGES = len(EDGES)
EXPECTED = "PoseNet heatmaps [1,h,w,17], short offsets [1,h,w,34] and mid offsets [1,h,w,64]"


class Maps:
    """The three PoseNet outputs of one frame: raw data plus how to dequantize it.

    Maps are kept raw (often uint8) and dequantized only where sampled:
    ``value = (raw - *_zero) * *_scale``; the offsets' scale also converts input pixels
    to grid cells (divides by the output stride).
    """

    def __init__(self, decoder: str, outputs: Sequence[OutputTensor], stride: int) -> None:
        heat, short, mid = by_channels(decoder, outputs, (17, 34, 64), EXPECTED)
        self.height, self.width = heat.shape[1:3]
        if self.height < 2 or self.width < 2:
            raise outputs_error(decoder, outputs, EXPECTED + " with h, w >= 2")
        self.heat = heat.data[0]
        self.short = short.data[0]
        self.mid = mid.data[0]
        self.heat_zero, self.heat_scale = _affine(heat, 1)
        self.short_zero, self.short_scale = _affine(short, stride)
        self.mid_zero, self.mid_scale = _affine(mid, stride)


def _affine(t: OutputTensor, stride: int) -> tuple[float, float]:
    """(zero point, scale per raw unit, divided by ``stride``) of one output."""
    if t.data.dtype.kind == "f" or not t.scale:
        return 0.0, 1.0 / stride
    return float(t.zero_point), float(t.scale) / stride


def sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def check_stride(decoder: str, stride: Any) -> int:
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride <= 0:
        raise ConfigError(
            f"decoder {decoder!r}: output_stride must be a positive integer, got {stride!r} "
            "(Coral's PoseNet models use 16)"
        )
    return int(stride)


def to_poses(
    xy_cells: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    pose_scores: npt.NDArray[np.float32],
    stride: int,
    transform: Transform,
) -> Poses:
    """Grid-cell (y, x) keypoints -> Poses in source pixels (input pixel = cell * stride)."""
    xy = xy_cells[..., ::-1] * np.float32(stride)
    return Poses(transform.to_source(xy), scores, pose_scores, schema="coco17")


SINGLE_PARAMS = ("output_stride", "schema")


def decode_single(
    outputs: Sequence[OutputTensor], transform: Transform, **params: Any
) -> Poses:
    """One pose: per-keypoint heatmap argmax, refined by that cell's short offset.

    Keypoint score = sigmoid of the heatmap logit at the argmax; pose score = their mean.
    Params: ``output_stride`` (16).
    """
    check_params("posenet_single", params, SINGLE_PARAMS)
    check_schema("posenet_single", params.get("schema", "coco17"), ("coco17",))
    stride = check_stride("posenet_single", params.get("output_stride", 16))
    maps = Maps("posenet_single", outputs, stride)
    h, w, k = maps.heat.shape
    flat = maps.heat.reshape(h * w, k).argmax(axis=0)
    ys, xs = np.divmod(flat, w)
    ks = np.arange(k)
    logits = (maps.heat[ys, xs, ks].astype(np.float32) - maps.heat_zero) * maps.heat_scale
    dy = (maps.short[ys, xs, ks].astype(np.float32) - maps.short_zero) * maps.short_scale
    dx = (maps.short[ys, xs, ks + k].astype(np.float32) - maps.short_zero) * maps.short_scale
    cells = np.stack([ys + dy, xs + dx], axis=-1).astype(np.float32)[None]
    scores = sigmoid(logits)[None]
    return to_poses(cells, scores, scores.mean(axis=1), stride, transform)
