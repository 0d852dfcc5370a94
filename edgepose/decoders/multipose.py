"""MoveNet MultiPose Lightning from its six CenterNet heads, in numpy (the Edge TPU runs the heads).

The float TF Hub graph ends in post-processing (top-k, gathers, argmax) that the Edge TPU
cannot run; cut at its heads, the network maps fully and this decoder does what the graph's
own tail does (read from the graph's ops; grid = the heads' H x W, stride = input / grid):

1. Person centres: the centre heatmap's local maxima in a 5x5 window, the 6 highest.
2. Box per centre: centre + box offset, +- half the box scale (ReLU'd), clipped to the grid.
3. Keypoint regression: centre + regression vector per keypoint.
4. Each keypoint snaps to the heatmap location, inside the person's box, that maximises
   ``heatmap * exp(-d^2 / (0.3 * min(H, W)))`` with d the distance (grid cells) to the
   regressed keypoint; + its keypoint offset. Its score is the largest such weighted value
   over all people at that location.
5. Pose score = centre score x mean of the keypoint scores above ``keypoint_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.decoders.base import (
    OutputTensor,
    check_params,
    check_schema,
    int_param,
    model_size,
    number_param,
    outputs_error,
)

EXPECTED = ("the six MultiPose heads [1,h,w,c]: centre (1), box scale (2), box offset (2), keypoint heatmaps "
            "(17), keypoint regression (34), keypoint offsets (34), named like the TF Hub graph's nodes "
            "(box_scale, box_offset, kpt_regress, kpt_offset)")
PARAMS = ("schema", "max_detections", "keypoint_threshold", "min_pose_score")
NUM_KPTS = 17
MAX_DETECTIONS = 6  # the graph's top-k
KEYPOINT_THRESHOLD = 0.126953125  # the graph's constant (0.127 in float16)
SIGMA_FACTOR = 0.300048828125  # d^2 is divided by this x min(h, w) (float16 of 0.3)
PEAK_WINDOW = 5
PEAK_EPS = 1e-6  # the graph: a peak is where |centre - 5x5 max| < 1e-6
Array = npt.NDArray[np.float32]


def _heads(outputs: Sequence[OutputTensor]) -> dict[str, Array]:
    """The six heads by channel count, the pairs with equal counts told apart by name."""
    found: dict[str, Array] = {}
    for o in outputs:
        if len(o.shape) != 4 or o.shape[0] != 1:
            raise outputs_error("multipose", outputs, EXPECTED)
        c, name = o.shape[3], o.name
        key = {1: "center", 17: "heatmap"}.get(c)
        if c == 2:
            key = "box_scale" if "scale" in name else "box_offset" if "box_offset" in name else None
        elif c == 34:
            key = "kpt_regress" if "regress" in name else "kpt_offset" if "kpt_offset" in name else None
        if key is None or key in found:
            raise outputs_error("multipose", outputs, EXPECTED)
        found[key] = o.dequantize()[0]
    if len(found) != 6 or len({v.shape[:2] for v in found.values()}) != 1:
        raise outputs_error("multipose", outputs, EXPECTED)
    return found


def _local_maxima(center: Array) -> Array:
    """``center`` where it equals the 5x5 max around it (SAME padding), else 0."""
    r = PEAK_WINDOW // 2
    padded = np.pad(center, r, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (PEAK_WINDOW, PEAK_WINDOW))
    pooled = windows.max(axis=(2, 3))
    return np.where(np.abs(center - pooled) < PEAK_EPS, center, 0.0).astype(np.float32)


def _top_peaks(peaks: Array, width: int, k: int) -> npt.NDArray[np.intp]:
    """The ``k`` highest peaks (flat indices; ties keep the lower index, as top-k does), one per
    plateau: an int8 centre heatmap has plateaus of equal values that would all count as peaks
    (duplicate people), so a peak of exactly the value of a kept one within 2 cells is dropped
    (float heads never have such ties: no effect on them)."""
    order = np.argsort(-peaks, kind="stable")
    r = PEAK_WINDOW // 2
    kept: list[int] = []
    for i in order:
        if len(kept) == k:
            break
        y, x = divmod(int(i), width)
        if peaks[i] > PEAK_EPS and any(  # tiny values: the graph counts every cell as a peak, so do we
                peaks[j] == peaks[i] and abs(y - j // width) <= r and abs(x - j % width) <= r for j in kept):
            continue
        kept.append(int(i))
    return np.asarray(kept, np.intp)


def _snap(heatmap: Array, box: Array, ry: Array, rx: Array, denom: np.float32,
          ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Per person and keypoint, the cell inside the person's box maximising
    ``heatmap * exp(-d^2 / denom)`` (first in row-major order on ties; (0, 0) when that is 0
    everywhere, as the graph's argmax over the whole grid gives). Only the box is computed."""
    n = len(box)
    hy = np.zeros((n, NUM_KPTS), np.intp)
    hx = np.zeros((n, NUM_KPTS), np.intp)
    for i in range(n):
        y0, y1 = int(np.ceil(box[i, 0])), int(np.ceil(box[i, 2]))  # rows with ymin <= y < ymax
        x0, x1 = int(np.ceil(box[i, 1])), int(np.ceil(box[i, 3]))
        if y1 <= y0 or x1 <= x0:
            continue
        yy = np.arange(y0, y1, dtype=np.float32)[:, None, None]
        xx = np.arange(x0, x1, dtype=np.float32)[None, :, None]
        w = heatmap[y0:y1, x0:x1] * np.exp(-((yy - ry[i]) ** 2 + (xx - rx[i]) ** 2) / denom)
        flat = w.reshape(-1, NUM_KPTS)
        best = flat.argmax(axis=0)
        found = flat[best, np.arange(NUM_KPTS)] > 0
        hy[i] = np.where(found, y0 + best // (x1 - x0), 0)
        hx[i] = np.where(found, x0 + best % (x1 - x0), 0)
    return hy, hx


def decode_raw(outputs: Sequence[OutputTensor], max_detections: int = MAX_DETECTIONS,
               keypoint_threshold: float = KEYPOINT_THRESHOLD) -> Array:
    """The float graph's own output for these heads: (n, 56) = 17 x (y, x, score) normalised
    to the input, then ymin, xmin, ymax, xmax (normalised), pose score."""
    h = _heads(outputs)
    gh, gw = h["center"].shape[:2]
    peaks = _local_maxima(h["center"][..., 0]).ravel()
    order = _top_peaks(peaks, gw, max_detections)
    cscore = peaks[order]
    cy, cx = (order // gw).astype(np.float32), (order % gw).astype(np.float32)
    iy, ix = order // gw, order % gw
    scale = np.maximum(h["box_scale"][iy, ix], 0.0)
    off = h["box_offset"][iy, ix]
    by, bx = cy + off[:, 0], cx + off[:, 1]
    box = np.stack([np.clip(by - scale[:, 0] / 2, 0, gh), np.clip(bx - scale[:, 1] / 2, 0, gw),
                    np.clip(by + scale[:, 0] / 2, 0, gh), np.clip(bx + scale[:, 1] / 2, 0, gw)], axis=-1)
    reg = h["kpt_regress"][iy, ix].reshape(-1, NUM_KPTS, 2)
    ry, rx = cy[:, None] + reg[..., 0], cx[:, None] + reg[..., 1]  # (n, 17)
    n = len(order)
    denom = np.float32(SIGMA_FACTOR * min(gh, gw))
    hy, hx = _snap(h["heatmap"], box, ry, rx, denom)
    k = np.arange(NUM_KPTS)[None, :]
    koff = h["kpt_offset"].reshape(gh, gw, NUM_KPTS, 2)[hy, hx, k]  # (n, 17, 2)
    # score: the largest weighted heatmap over all people at the chosen cell (the graph's max over people)
    fy, fx = hy.astype(np.float32)[..., None], hx.astype(np.float32)[..., None]  # (n, 17, 1) vs people j
    d2 = (fy - ry.T[None]) ** 2 + (fx - rx.T[None]) ** 2  # (n, 17, n_j)
    inside = ((fy >= box[:, 0]) & (fy < box[:, 2]) & (fx >= box[:, 1]) & (fx < box[:, 3]))
    heat = h["heatmap"][hy, hx, k][..., None]
    kscore = (heat * np.exp(-d2 / denom) * inside).max(axis=-1) if n else np.zeros((0, NUM_KPTS), np.float32)
    ky, kx = (hy + koff[..., 0]) / gh, (hx + koff[..., 1]) / gw
    valid = kscore > keypoint_threshold
    pose = cscore * np.where(valid, kscore, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    kpts = np.stack([ky, kx, kscore], axis=-1).reshape(n, NUM_KPTS * 3)
    norm_box = np.clip(box / np.array([gh, gw, gh, gw], np.float32), 0.0, 1.0)
    return np.concatenate([kpts, norm_box, pose[:, None]], axis=1).astype(np.float32)


def decode(outputs: Sequence[OutputTensor], transform: Transform, **params: Any) -> Poses:
    """Poses (source pixels) from the six heads; poses scoring below ``min_pose_score`` are dropped."""
    max_det, kpt_thr, min_score = _params(params)
    return poses_from_raw(decode_raw(outputs, max_det, kpt_thr), transform, min_score)


def _params(params: dict[str, Any]) -> tuple[int, float, float]:
    """The checked parameters: a wrong type or range is a ConfigError naming it (a manifest typo)."""
    check_params("multipose", params, PARAMS)
    check_schema("multipose", params.get("schema", "coco17"), ("coco17",))
    max_det = int_param("multipose", params, "max_detections", MAX_DETECTIONS, 1)
    kpt_thr, min_score = (number_param("multipose", params, name, default, lambda v: 0.0 <= v < 1.0,
                                       "a number in [0, 1)")
                          for name, default in (("keypoint_threshold", KEYPOINT_THRESHOLD),
                                                ("min_pose_score", 0.0)))
    return max_det, kpt_thr, min_score


def poses_from_raw(raw: npt.ArrayLike, transform: Transform, min_pose_score: float = 0.0) -> Poses:
    """``Poses`` from MultiPose's (n, 56) rows (the float graph's [1,6,56] output or ``decode_raw``)."""
    rows = np.asarray(raw, np.float32).reshape(-1, 56)
    rows = rows[rows[:, 55] > max(min_pose_score, 0.0)]  # a zero row is an empty top-k slot
    if not len(rows):
        return Poses.empty("coco17")
    h_in, w_in = model_size("multipose", transform)
    k = rows[:, :51].reshape(-1, NUM_KPTS, 3)
    xy = np.stack([k[..., 1] * w_in, k[..., 0] * h_in], axis=-1)
    return Poses(transform.to_source(xy), k[..., 2], rows[:, 55], schema="coco17")
