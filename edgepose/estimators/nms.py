"""Object keypoint similarity (OKS) between poses, and duplicate removal by it.

Two crops of the same person (a PoseNet proposal and the previous frame's pose, or two
PoseNet poses of one body) give two nearly equal poses; box overlap cannot tell those
from two people standing close, keypoint distance can. OKS is COCO's keypoint match
score: ``mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2))`` over the keypoints both poses see,
with ``s^2`` the reference pose's area (here the area of its keypoints' box).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses
from edgepose.core.schemas import MPII_TO_COCO, get_schema

# COCO's per-keypoint sigmas (pycocotools' COCOeval.kpt_oks_sigmas), nose .. right ankle.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89], np.float64) / 10.0
# MPII joints COCO has no sigma for (pelvis, thorax, neck, head top): about a shoulder's.
OTHER_SIGMA = 0.079


def keypoint_sigmas(schema: str) -> npt.NDArray[np.float64]:
    """Per-keypoint OKS sigmas: COCO's, mapped through the shared joints for MPII."""
    if schema == "coco17":
        return COCO_SIGMAS
    n = get_schema(schema).num_keypoints
    out = np.full(n, OTHER_SIGMA)
    if schema == "mpii16":
        for m, c in MPII_TO_COCO.items():
            out[m] = COCO_SIGMAS[c]
    return out


def oks(xy: npt.ArrayLike, ref: npt.ArrayLike, area: npt.ArrayLike, seen: npt.ArrayLike,
        schema: str = "coco17") -> npt.NDArray[np.float64]:
    """COCO's OKS of poses ``xy`` against reference poses ``ref`` (both (..., K, 2),
    broadcast), the reference of ``area`` (...) px^2, over the keypoints ``seen`` (..., K);
    0 where none is seen. The one OKS: pose NMS and the tests' ground-truth matches."""
    d2 = ((np.asarray(xy, np.float64) - np.asarray(ref, np.float64)) ** 2).sum(-1)
    k2 = (2 * keypoint_sigmas(schema)) ** 2
    e = np.exp(-d2 / (2 * np.asarray(area, np.float64)[..., None] * k2))
    seen = np.asarray(seen, bool)
    count = seen.sum(-1)
    return np.where(count > 0, (e * seen).sum(-1) / np.maximum(count, 1), 0.0)


def oks_matrix(poses: Poses, keypoint_threshold: float = 0.2) -> npt.NDArray[np.float64]:
    """(n, n) OKS of pose i against reference pose j (area from j's keypoint box),
    over the keypoints both score at least ``keypoint_threshold``; 0 when they share none."""
    n = len(poses)
    if n == 0:
        return np.zeros((0, 0))
    boxes = poses.boxes(keypoint_threshold).astype(np.float64)  # NaN where too few keypoints
    area = np.nan_to_num((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), nan=0.0)
    area = np.maximum(area, 1.0)
    seen = poses.scores >= keypoint_threshold
    return oks(poses.xy[:, None], poses.xy[None, :], area[None, :], seen[:, None] & seen[None, :],
               poses.schema)


def pose_nms(poses: Poses, threshold: float = 0.5,
             keypoint_threshold: float = 0.2) -> tuple[list[int], list[list[int]]]:
    """Greedy NMS by OKS: highest pose score first, a pose whose OKS against a kept one
    exceeds ``threshold`` is a duplicate of it. Returns the kept indices (by descending
    score) and, for each, the indices it absorbed (itself first)."""
    sim = oks_matrix(poses, keypoint_threshold)
    order = np.argsort(-poses.pose_scores, kind="stable")
    kept: list[int] = []
    groups: list[list[int]] = []
    for i in order.tolist():
        for g, j in enumerate(kept):
            if max(sim[i, j], sim[j, i]) > threshold:
                groups[g].append(i)
                break
        else:
            kept.append(i)
            groups.append([i])
    return kept, groups
