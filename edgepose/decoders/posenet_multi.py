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
edges at the same tree depth, so a frame costs ~8 depth levels of numpy calls no
matter how many candidates there are; the sequential NMS loop then only picks poses.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
from scipy.ndimage import maximum_filter

from edgepose.decoders.base import OutputTensor, check_params, check_schema
from edgepose.decoders.posenet import (
    EDGES, NUM_EDGES, NUM_KEYPOINTS, Maps, check_stride, sigmoid, to_poses,
)
from edgepose.errors import ConfigError
from edgepose.pose import Poses
from edgepose.preprocess import Transform

MULTI_PARAMS = (
    "max_detections", "score_threshold", "nms_radius", "output_stride",
    "local_maximum_radius", "refine_steps", "coral_edge16", "schema",
)
_DUMMY = NUM_KEYPOINTS  # scratch keypoint slot that padded table entries read and write

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float32]


@functools.lru_cache(maxsize=2)
def _tree_tables(coral_edge16: bool) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Per root keypoint, the skeleton walk grouped by depth level.

    Returns ``parent, child`` (17, D, S), ``mid_channels`` (17, D, S, 2) (the y and x
    channels of the mid offsets for that step) and ``depth`` (17,). Padded entries point
    at the scratch slot. ``coral_edge16`` reproduces Coral's off-by-one for the first
    backward edge (left eye -> nose reads channels 16 and 32), which its references show.
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
    parent = np.full((NUM_KEYPOINTS, depth, slots), _DUMMY, np.intp)
    child = parent.copy()
    mid = np.zeros((NUM_KEYPOINTS, depth, slots, 2), np.intp)
    for root, levels in enumerate(levels_by_root):
        for d, level in enumerate(levels):
            for s, (p, c, e) in enumerate(level):
                parent[root, d, s], child[root, d, s] = p, c
                if e < NUM_EDGES:  # forward: [fwd y | fwd x | bwd y | bwd x]
                    mid[root, d, s] = (e, NUM_EDGES + e)
                elif e == NUM_EDGES and coral_edge16:
                    mid[root, d, s] = (e, 2 * NUM_EDGES)
                else:
                    mid[root, d, s] = (e + NUM_EDGES, e + 2 * NUM_EDGES)
    depths = np.array([len(lv) for lv in levels_by_root], np.intp)
    return parent, child, mid, depths


class _Sampler:
    """Bilinear sampling of a [h, w, c] map at many (y, x) points and channel pairs."""

    def __init__(self, data: npt.NDArray[Any], zero: float, scale: float) -> None:
        h, w, c = data.shape
        self.flat = data.reshape(-1)
        self.limit = np.array([h - 2, w - 2], np.intp)
        self.strides = np.array([w * c, c], np.intp)
        self.corners = np.array([0, c, w * c, w * c + c], np.intp)[None, :, None]
        self.zero, self.scale = np.float32(zero), np.float32(scale)

    def offsets(self, channels: IntArray) -> IntArray:
        """(S, 4, m) flat offsets of the four cell corners for (S, m) channels."""
        return self.corners + channels[:, None, :]

    def __call__(self, p: FloatArray, offsets: IntArray) -> FloatArray:
        # Cell corner; the last row/column uses the cell before it with weight 1.
        f = np.minimum(p.astype(np.intp), self.limit)
        frac = p - f
        v = self.flat[(f @ self.strides)[:, None, None] + offsets].astype(np.float32)
        lw = np.stack((1 - frac, frac), axis=1)
        w = (lw[:, :, None, 0] * lw[:, None, :, 1]).reshape(-1, 1, 4)
        return (np.matmul(w, v)[:, 0] - self.zero) * self.scale


def _params(params: dict[str, Any]) -> tuple[int, float, float, int, int, int, bool]:
    check_params("posenet_multi", params, MULTI_PARAMS)
    check_schema("posenet_multi", params.get("schema", "coco17"), ("coco17",))
    max_det = params.get("max_detections", 10)
    thr = params.get("score_threshold", 0.5)
    radius = params.get("nms_radius", 20.0)
    local = params.get("local_maximum_radius", 1)
    steps = params.get("refine_steps", 5)
    if not isinstance(max_det, (int, np.integer)) or max_det < 1:
        raise ConfigError(f"posenet_multi: max_detections must be an integer >= 1, got {max_det!r}")
    if not isinstance(thr, (int, float)) or not 0.0 < thr < 1.0:
        raise ConfigError(f"posenet_multi: score_threshold must be in (0, 1), got {thr!r}")
    if not isinstance(radius, (int, float)) or radius < 0:
        raise ConfigError(f"posenet_multi: nms_radius must be >= 0 input pixels, got {radius!r}")
    for name, v in (("local_maximum_radius", local), ("refine_steps", steps)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"posenet_multi: {name} must be an integer >= 0, got {v!r}")
    stride = check_stride("posenet_multi", params.get("output_stride", 16))
    quirk = bool(params.get("coral_edge16", True))
    return int(max_det), float(thr), float(radius), stride, int(local), int(steps), quirk


def decode_multi(outputs: Sequence[OutputTensor], transform: Transform, **params: Any) -> Poses:
    """Up to ``max_detections`` poses, best first (see the module docstring).

    Params: ``max_detections`` (10), ``score_threshold`` (0.5), ``nms_radius`` (20 input
    pixels), ``output_stride`` (16), ``local_maximum_radius`` (1 cell), ``refine_steps``
    (5), ``coral_edge16`` (True: read edge 16 the way Coral's decoder op does).
    """
    max_det, thr, radius, stride, local, steps, quirk = _params(params)
    maps = Maps("posenet_multi", outputs, stride)
    heat = maps.heat
    h, w, k = heat.shape
    thr_logit = -np.log(1.0 / (thr + 1e-6) - 1.0)
    peaks = maximum_filter(heat, size=(2 * local + 1, 2 * local + 1, 1), mode="nearest")
    ys, xs, ks = np.nonzero((heat >= thr_logit) & (heat >= peaks))
    if not len(ys):
        return Poses.empty()
    order = np.argsort(-heat[ys, xs, ks], kind="stable")
    ys, xs, ks = ys[order], xs[order], ks[order]
    n = len(ys)
    hi = np.array([h - 1, w - 1], np.float32)

    # Roots: the candidate cells moved by their own short offsets.
    short = _Sampler(maps.short, maps.short_zero, maps.short_scale)
    mid = _Sampler(maps.mid, maps.mid_zero, maps.mid_scale)
    d = (maps.short[ys[:, None], xs[:, None], np.stack([ks, ks + k], 1)].astype(np.float32) - short.zero) * short.scale
    roots = np.clip(np.stack([ys, xs], 1).astype(np.float32) + d, 0, hi)

    # Walk the tree for every candidate at once, one depth level at a time.
    parent, child, mid_ch, depth = _tree_tables(quirk)
    pos = np.zeros((n, NUM_KEYPOINTS + 1, 2), np.float32)
    rows = np.arange(n)[:, None]
    pos[rows[:, 0], ks] = roots
    par, chi, mch = parent[ks], child[ks], mid_ch[ks]
    for lv in range(int(depth[ks].max())):
        p = pos[rows, par[:, lv]].reshape(-1, 2)
        p = np.clip(p + mid(p, mid.offsets(mch[:, lv].reshape(-1, 2))), 0, hi)
        c = chi[:, lv].reshape(-1, 1)
        offs = short.offsets(np.concatenate([c, c + k], 1) % (2 * k))
        for _ in range(steps):
            p = np.clip(p + short(p, offs), 0, hi)
        pos[rows, chi[:, lv]] = p.reshape(n, -1, 2)
    kps = pos[:, :NUM_KEYPOINTS]

    heat_s = _Sampler(heat, 0.0, 1.0)
    chans = np.tile(np.arange(k), n)[:, None]
    scores = sigmoid(heat_s(kps.reshape(-1, 2), heat_s.offsets(chans)).reshape(n, k))
    first = scores.mean(axis=1)
    ok = np.flatnonzero(first >= thr)
    if not len(ok):
        return Poses.empty()

    # Sequential root NMS, vectorised: blocks[j, i] = pose j suppresses root i.
    r2 = np.float32((radius / stride) ** 2)
    blocks = ((kps[ok][:, ks] - roots[None]) ** 2).sum(-1) <= r2
    free = np.zeros(n, bool)
    free[ok] = True
    row_of = np.full(n, -1)
    row_of[ok] = np.arange(len(ok))
    picked: list[int] = []
    while len(picked) < max_det and free.any():
        i = int(free.argmax())
        picked.append(i)
        free[: i + 1] = False
        free &= ~blocks[row_of[i]]

    # Rescore: drop keypoints that a higher-scoring pose already covers.
    idx = np.array(picked)[np.argsort(-first[picked], kind="stable")]
    pk, ps = kps[idx], scores[idx]
    near = ((pk[:, None] - pk[None]) ** 2).sum(-1) <= r2
    covered = (near & np.tri(len(idx), k=-1, dtype=bool)[:, :, None]).any(axis=1)
    final = np.where(covered, 0.0, ps).sum(axis=1) / k
    keep = np.argsort(-final, kind="stable")
    keep = keep[final[keep] >= thr]
    return to_poses(pk[keep], ps[keep], final[keep].astype(np.float32), stride, transform)
