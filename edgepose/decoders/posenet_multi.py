"""PoseNet multi-pose decoding (PersonLab / TF.js PoseNet), matching Coral's PosenetDecoderOp.

Steps, all in grid cells (input pixel = cell * output_stride):

1. Candidate roots: heatmap cells that are the maximum of their channel in a
   ``(2r+1)^2`` window (``local_maximum_radius`` r) and score >= ``score_threshold``,
   moved by their short offset, taken in decreasing score order.
2. Root NMS: a root within ``nms_radius`` input pixels of the same keypoint of an
   already accepted pose is skipped.
3. The rest of the pose is found by walking the 16-edge skeleton tree outward from the
   root: follow the mid-range displacement of each edge (forward or backward), then
   refine ``refine_steps`` times with the child's short offset; all samples are bilinear.
4. Keypoint score = sigmoid of the bilinearly sampled heatmap logit; a pose is kept when
   the mean of its 17 keypoint scores reaches ``score_threshold``.
5. Rescoring (soft keypoint NMS, tfjs ``getInstanceScore``-like): each pose's score is
   the mean of its keypoint scores, counting zero for keypoints within ``nms_radius`` of
   the same keypoint of a higher-scoring pose. Poses below the threshold are dropped.

This is Coral's C++ algorithm (bilinear sampling, 5 refinement steps, scores sampled at
the decoded positions), which its reference outputs were made with; tfjs differs in
details (nearest-cell sampling, 2 refinement steps, scoring while decoding).

Speed: every candidate root is decoded at once, vectorised over candidates and over the
edges at the same tree depth, so a frame costs ~8 depth levels x 6 bilinear samples of
numpy calls (Python-side work does not grow with the number of candidates or the map
size); the sequential NMS loop then only picks poses. Those ~50 dependent samples of
~100 points each are dominated by numpy's per-call overhead (~0.3-3 us a call), so the
walk is written for the fewest, cheapest calls: the bilinear sample is inlined (~12
calls including the update and clamp), one ``einsum`` does the four-corner weighting
straight on the raw (uint8) values, and every per-level array, constants included, is
made contiguous up front because same-shape contiguous operands hit numpy's fast paths
(~2x cheaper than broadcasting against scalars or strided views). Refinement cannot
stop early (points keep moving through all 5 steps) and float32 drifts by ~0.01 px,
so positions stay float64; results equal the straightforward implementation's exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.decoders.base import OutputTensor, check_params, check_schema, int_param, number_param
from edgepose.decoders.posenet import (
    EDGES,
    NUM_EDGES,
    NUM_KEYPOINTS,
    Maps,
    check_stride,
    to_poses,
)

MULTI_PARAMS = (
    "max_detections", "score_threshold", "nms_radius", "output_stride",
    "local_maximum_radius", "refine_steps", "coral_edge16", "schema",
)

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


@functools.lru_cache(maxsize=2)
def _tree_steps(coral_edge16: bool) -> tuple[npt.NDArray[np.bool_], IntArray]:
    """Per root keypoint, the skeleton walk grouped by depth level.

    Returns ``valid`` (D, 17, S), which (level, root, slot) entries are real steps, and
    ``table`` (6, D, 17, S): parent, child, then the mid y/x and short y/x channels read.
    ``coral_edge16`` reproduces Coral's off-by-one for the first backward edge (left
    eye -> nose reads channels 16 and 32 instead of 32 and 48).
    """
    adjacent: list[list[tuple[int, int]]] = [[] for _ in range(NUM_KEYPOINTS)]
    for k, (a, b) in enumerate(EDGES):
        adjacent[a].append((b, k))
        adjacent[b].append((a, NUM_EDGES + k))
    levels_by_root = []
    for root in range(NUM_KEYPOINTS):
        levels, seen, frontier = [], {root}, [root]
        while frontier:
            level = [(p, c, e) for p in frontier for c, e in adjacent[p] if c not in seen]
            seen.update(c for _, c, _ in level)
            frontier = [c for _, c, _ in level]
            if level:
                levels.append(level)
        levels_by_root.append(levels)
    depth = max(len(lv) for lv in levels_by_root)
    slots = max(len(level) for lv in levels_by_root for level in lv)
    valid = np.zeros((depth, NUM_KEYPOINTS, slots), bool)
    table = np.zeros((6, depth, NUM_KEYPOINTS, slots), np.intp)
    for root, levels in enumerate(levels_by_root):
        for d, level in enumerate(levels):
            for s, (p, c, e) in enumerate(level):
                if e < NUM_EDGES:  # forward: [fwd y | fwd x | bwd y | bwd x]
                    mid = (e, NUM_EDGES + e)
                elif e == NUM_EDGES and coral_edge16:
                    mid = (e, 2 * NUM_EDGES)
                else:
                    mid = (e + NUM_EDGES, e + 2 * NUM_EDGES)
                valid[d, root, s] = True
                table[:, d, root, s] = (p, c, *mid, c, NUM_KEYPOINTS + c)
    return valid, table


@functools.lru_cache(maxsize=8)
def _step_rows(coral_edge16: bool, w: int, c_mid: int, c_short: int) -> tuple[IntArray, IntArray]:
    """``_tree_steps`` for maps ``w`` cells wide, as one row per (level, root, slot):
    ``rows`` (D * 17 * S, 18) parent, child, then the flat offsets (corner dy, corner dx,
    y/x channel) of the 8 mid and 8 short values read; ``ids`` (D, 17, S) the row of
    each real step, -1 for padding."""
    valid, table = _tree_steps(coral_edge16)
    out = np.empty((18,) + table.shape[1:], np.intp)
    out[:2] = table[:2]
    for row, c, ch in ((2, c_mid, table[2:4]), (10, c_short, table[4:6])):
        corners = np.array([[0, c], [w * c, w * c + c]], np.intp)
        out[row:row + 8] = (corners[:, :, None, None, None, None] + ch).reshape(8, *ch.shape[1:])
    ids = np.where(valid, np.arange(valid.size).reshape(valid.shape), -1)
    return np.ascontiguousarray(out.reshape(18, -1).T), ids


@functools.lru_cache(maxsize=8)
def _geometry(w: int, c: int) -> tuple[IntArray, IntArray]:
    """Flat strides (row, column) and cell-corner offsets (2, 2, 1, 1) of a [h, w, c] map."""
    corners = np.array([[0, c], [w * c, w * c + c]], np.intp)[:, :, None, None]
    return np.array([w * c, c], np.intp), corners


class _Map:
    """One [h, w, c] map (raw, maybe quantized) for bilinear sampling; see ``_bilinear``."""

    def __init__(self, data: npt.NDArray[Any], zero: float, scale: float) -> None:
        self.flat = data.reshape(-1)
        self.strides, self.corners = _geometry(*data.shape[1:])
        self.zero, self.scale = zero, scale


def _bilinear(
    m: _Map, p: FloatArray, offsets: IntArray, lerp: FloatArray, ones: FloatArray,
) -> FloatArray:
    """Raw (not dequantized) bilinear values of map ``m`` at points ``p`` (2, n).

    ``offsets`` (2, 2, k, n) are the flat offsets (corner dy, corner dx, channel) read
    for each point; returns (k, n). ``lerp`` (2, 2, n) is scratch for the weights
    ((1 - t, t) by y/x), ``ones`` (2, n) all ones.
    Positions must lie in [0, h - 1 - eps] x [0, w - 1 - eps] (see ``_EPS``), so the
    cell's lower-right corner is always inside the map.
    """
    f = p.astype(np.intp)
    np.subtract(p, f, out=lerp[1])
    np.subtract(ones, lerp[1], out=lerp[0])
    v = m.flat.take(offsets + m.strides @ f)
    return np.einsum("in,jn,ijmn->mn", lerp[:, 0], lerp[:, 1], v)


def _walk(
    pos: FloatArray, slots: IntArray, rows: IntArray, ends: list[int],
    maps: tuple[_Map, _Map], steps: int, hi: FloatArray,
) -> None:
    """Decode the children of each level in place in ``pos`` (2, n * 17).

    Level i covers steps ``ends[i - 1]:ends[i]``; ``slots`` (2, n_steps) are the parent
    and child columns of ``pos``. Per level: one mid-offset step from the parent, then
    ``steps`` short-offset refinements, each clamped to the grid. ``rows`` are the
    steps' ``_step_rows``.

    This runs ~50 bilinear samples of ~100 points per frame, so the number of numpy
    calls is what costs, and each call is cheapest when its operands are contiguous
    with equal shapes and dtypes (no broadcasting, no scalars): every per-level array
    is made contiguous up front, constants included.
    """
    mid, short = maps
    n = slots.shape[1]
    # Level-blocked buffers: level [a, b) owns elements [r * a, r * b) of each row.
    lerp = np.empty(6 * n)  # (1 - t, t, floor) x (y, x)
    # mid scale, mid bias, short scale, short bias (value = raw * scale + bias), 1, 0, hi
    const = np.empty((7, 2 * n))
    const[:6] = np.array([
        mid.scale, -mid.zero * mid.scale, short.scale, -short.zero * short.scale, 1.0, 0.0,
    ])[:, None]
    levels = []
    for a, b in zip([0] + ends[:-1], ends):
        c = const[:, 2 * a:2 * b].reshape(7, 2, b - a)
        c[6] = hi
        offsets = np.ascontiguousarray(rows[a:b, 2:].T).reshape(2, 2, 2, 2, b - a)
        levels.append((slots[0, a:b], slots[1, a:b], lerp[6 * a:6 * b].reshape(3, 2, b - a), c,
                       offsets[0], offsets[1]))
    # The loop below is _bilinear inlined, with numpy's functions bound to locals.
    astype, floor, subtract, multiply, maximum, minimum, einsum, intp = (
        np.ndarray.astype, np.floor, np.subtract, np.multiply, np.maximum, np.minimum, np.einsum,
        np.intp)
    mid_take, short_take = mid.flat.take, short.flat.take
    # Float strides: the cell's flat index comes exact from one float matmul.
    mid_strides, short_strides = mid.strides.astype(float), short.strides.astype(float)
    for parent, child, lerp_l, c, mo, so in levels:
        mid_s, mid_b, short_s, short_b, ones, lo, up = c
        comp, frac, fl = lerp_l
        ly, lx = lerp_l[:2, 0], lerp_l[:2, 1]
        p = pos.take(parent, axis=1)
        floor(p, out=fl)
        subtract(p, fl, out=frac)
        subtract(ones, frac, out=comp)
        d = einsum("in,jn,ijmn->mn", ly, lx, mid_take(mo + astype(mid_strides @ fl, intp)))
        p += multiply(d, mid_s, out=d)
        p += mid_b
        minimum(maximum(p, lo, out=p), up, out=p)
        for _ in range(steps):
            floor(p, out=fl)
            subtract(p, fl, out=frac)
            subtract(ones, frac, out=comp)
            d = einsum("in,jn,ijmn->mn", ly, lx, short_take(so + astype(short_strides @ fl, intp)))
            p += multiply(d, short_s, out=d)
            p += short_b
            minimum(maximum(p, lo, out=p), up, out=p)
        pos[:, child] = p


# Positions stay this far (in cells, ~0.016 input pixels) inside the last row/column so
# bilinear sampling needs no bounds checks; Coral clamps to exactly h - 1.
_EPS = 1e-3


def _clip(p: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Clamp (2, n) y, x rows to the grid in place (cheaper than np.clip on small arrays)."""
    return np.minimum(np.maximum(p, 0, out=p), hi, out=p)


def _window_max(heat: npt.NDArray[Any], radius: int) -> npt.NDArray[Any]:
    """Per-channel maximum over a (2r+1)^2 window, cut at the border.

    A separable running max on slices: the same as scipy.ndimage.maximum_filter with
    mode="nearest", but ~40x faster here on [h, w, 17] maps (12 us vs 480 us).
    """
    rows = heat.copy()
    for s in range(1, radius + 1):
        np.maximum(rows[s:], heat[:-s], out=rows[s:])
        np.maximum(rows[:-s], heat[s:], out=rows[:-s])
    peak = rows.copy()
    for s in range(1, radius + 1):
        np.maximum(peak[:, s:], rows[:, :-s], out=peak[:, s:])
        np.maximum(peak[:, :-s], rows[:, s:], out=peak[:, :-s])
    return peak


def _candidates(heat: npt.NDArray[Any], threshold: float, radius: int) -> tuple[IntArray, ...]:
    """(y, x, keypoint) of the cells >= threshold that are the maximum of their channel
    in a (2r+1)^2 window (ties count), best first."""
    h, w, k = heat.shape
    if heat.dtype.kind in "ui":  # raw integers: compare against an integer
        info = np.iinfo(heat.dtype)
        threshold = min(max(int(np.ceil(threshold)), int(info.min)), int(info.max) + 1)
        if threshold > info.max:
            return (np.zeros(0, np.intp),) * 3
    flat = heat.reshape(-1)
    cells = np.flatnonzero((flat >= threshold) & (flat >= _window_max(heat, radius).reshape(-1)))
    cells = cells[np.argsort(flat[cells], kind="stable")[::-1]]
    yx, ks = np.divmod(cells, k)
    return (*np.divmod(yx, w), ks)


def _params(params: dict[str, Any]) -> tuple[int, float, float, int, int, int, bool]:
    check_params("posenet_multi", params, MULTI_PARAMS)
    check_schema("posenet_multi", params.get("schema", "coco17"), ("coco17",))
    name = "posenet_multi"
    max_det = int_param(name, params, "max_detections", 10, 1)
    thr = number_param(name, params, "score_threshold", 0.5, lambda v: 0.0 < v < 1.0, "in (0, 1)")
    radius = number_param(name, params, "nms_radius", 20.0, lambda v: v >= 0, ">= 0 input pixels")
    local = int_param(name, params, "local_maximum_radius", 1, 0)
    steps = int_param(name, params, "refine_steps", 5, 0)
    stride = check_stride("posenet_multi", params.get("output_stride", 16))
    quirk = params.get("coral_edge16", False)
    if not isinstance(quirk, bool):
        raise ConfigError(f"{name}: coral_edge16 must be true or false, got {quirk!r}")
    return max_det, thr, radius, stride, local, steps, quirk


def decode_multi(outputs: Sequence[OutputTensor], transform: Transform, **params: Any) -> Poses:
    """Up to ``max_detections`` poses, best first (see the module docstring).

    Params: ``max_detections`` (10), ``score_threshold`` (0.5), ``nms_radius`` (20 input
    pixels), ``output_stride`` (16), ``local_maximum_radius`` (1 cell), ``refine_steps``
    (5), ``coral_edge16`` (False; True reads the left-eye -> nose edge from the channels
    Coral's decoder op uses by an off-by-one; it made no difference on its references).
    """
    max_det, thr, radius, stride, local, steps, quirk = _params(params)
    maps = Maps("posenet_multi", outputs, stride)
    h, w, k = maps.heat.shape
    thr_logit = -np.log(1.0 / (thr + 1e-6) - 1.0)
    # Candidates on the raw (maybe uint8) heatmap: dequantizing is monotonic.
    raw_thr = thr_logit / maps.heat_scale + maps.heat_zero
    ys, xs, ks = _candidates(maps.heat, raw_thr, local)
    n = len(ks)
    if not n:
        return Poses.empty()
    hi = np.array([[h - 1 - _EPS], [w - 1 - _EPS]])

    # Roots: the candidate cells moved by their own short offsets.
    d = maps.short.reshape(-1).take((ys * w + xs) * (2 * k) + ks + np.array([[0], [k]]))
    roots = _clip(np.stack([ys, xs]) + (d - maps.short_zero) * maps.short_scale, hi)

    # Walk the tree for every candidate at once, one depth level at a time.
    # Positions as (y/x, candidate * 17 + keypoint).
    pos = np.zeros((2, n * k))
    pos[:, np.arange(n) * k + ks] = roots
    # Only the real steps, ordered by level, then candidate: their _step_rows.
    rows, ids = _step_rows(quirk, w, maps.mid.shape[2], maps.short.shape[2])
    slots_ = ids.shape[2]
    per_level = n * slots_
    ids = ids[:, ks].reshape(-1)  # (level, candidate, slot)
    real = np.flatnonzero(ids >= 0)
    rows = rows.take(ids[real], axis=0)
    slots = np.ascontiguousarray(rows[:, :2].T) + (real % per_level) // slots_ * k  # parent, child
    ends = np.searchsorted(real, per_level * np.arange(1, len(ids) // per_level + 1)).tolist()
    while len(ends) > 1 and ends[-1] == ends[-2]:  # levels deeper than any candidate's tree
        ends.pop()
    mid = _Map(maps.mid, maps.mid_zero, maps.mid_scale)
    short = _Map(maps.short, maps.short_zero, maps.short_scale)
    _walk(pos, slots, rows, ends, (mid, short), steps, hi)

    # Keypoint scores at the decoded positions: sigmoid of the bilinear heatmap logit.
    heat = _Map(maps.heat, maps.heat_zero, maps.heat_scale)
    chans = heat.corners + (np.zeros((n, 1), np.intp) + np.arange(k)).reshape(-1)
    logits = _bilinear(heat, pos, chans, np.empty((2, 2, n * k)), np.ones((2, n * k)))
    # == posenet.sigmoid((logits - zero) * scale), one call fewer
    e = np.exp((maps.heat_zero - logits.reshape(n, k)) * maps.heat_scale)
    scores = (1.0 / (1.0 + e)).astype(np.float32)
    first = scores.sum(axis=1) / k  # == scores.mean(axis=1), cheaper
    free = first >= thr

    # Sequential root NMS: take the best free candidate, then free only the candidates
    # whose root is farther than nms_radius from the same keypoint of the taken pose.
    r2 = np.float32((radius / stride) ** 2)
    picked: list[int] = []
    while len(picked) < max_det:
        i = int(free.argmax())
        if not free[i]:
            break
        picked.append(i)
        free[: i + 1] = False
        d = pos.take(i * k + ks, axis=1) - roots
        free &= np.einsum("ij,ij->j", d, d) > r2
    if not picked:
        return Poses.empty()

    # Rescore: drop keypoints that a higher-scoring pose already covers.
    idx = np.array(picked)
    if len(idx) > 1:
        idx = idx[np.argsort(-first[idx], kind="stable")]
    pk, ps = pos.reshape(2, n, k)[:, idx], scores[idx]  # (2, m, 17) y/x, (m, 17)
    if len(idx) > 1:
        d = pk[:, :, None] - pk[:, None]
        near = np.einsum("iabk,iabk->abk", d, d) <= r2
        earlier = np.arange(len(idx))
        covered = (near & (earlier[:, None] > earlier)[:, :, None]).any(axis=1)
        final = np.where(covered, 0.0, ps).sum(axis=1) / k
        keep = np.argsort(-final, kind="stable")
        keep = keep[final[keep] >= thr]
        pk, ps, final = pk[:, keep], ps[keep], final[keep]
    else:
        final = first[idx]
    pk = pk.transpose(1, 2, 0)  # (m, 17, 2) as (y, x)
    return to_poses(pk, ps, final.astype(np.float32), stride, transform)
