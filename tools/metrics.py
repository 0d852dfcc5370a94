"""Keypoint metrics shared by the quantization report and the evaluator.

OKS-based AP comes from pycocotools (see ``tools.evaluate``); here are the simple ones:
PCK between two keypoint sets and PCKh against MPII ground truth.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

# MPII head size: the official PCKh uses the head box diagonal * 0.6 (from the annotation's
# head rectangle). The tutorial's JSON layout has no head box, so the fallback used here is
# the head-top -> neck distance, which in MPII is close to that segment length.
MPII_HEAD_TOP, MPII_NECK = 9, 8


def pck(pred: npt.ArrayLike, ref: npt.ArrayLike, norm: npt.ArrayLike, alpha: float = 0.05,
        mask: npt.ArrayLike | None = None) -> float:
    """Fraction of keypoints with ``|pred - ref| < alpha * norm``.

    ``pred``/``ref`` are (..., K, 2); ``norm`` broadcasts to (..., K) (e.g. the input size,
    or head sizes shaped (n, 1)); ``mask`` (..., K) selects the keypoints that count.
    Returns NaN when no keypoint counts.
    """
    p, r = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    d = np.linalg.norm(p - r, axis=-1)
    thr = alpha * np.broadcast_to(np.asarray(norm, np.float64), d.shape)
    m = np.ones(d.shape, bool) if mask is None else np.asarray(mask, bool)
    if not m.any():
        return float("nan")
    return float(np.mean(d[m] < thr[m]))


def mpii_head_sizes(joints: npt.ArrayLike, head_boxes: npt.ArrayLike | None = None) -> FloatArray:
    """Per-person head size for PCKh: 0.6 x head-box diagonal when boxes (x1, y1, x2, y2)
    are given, else the head-top -> neck distance (the fallback for the tutorial JSON)."""
    j = np.asarray(joints, np.float32)
    if head_boxes is not None:
        b = np.asarray(head_boxes, np.float32)
        return (0.6 * np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])).astype(np.float32)
    return np.linalg.norm(j[:, MPII_HEAD_TOP] - j[:, MPII_NECK], axis=-1).astype(np.float32)


def pckh(pred: npt.ArrayLike, gt: npt.ArrayLike, visible: npt.ArrayLike, head_sizes: npt.ArrayLike,
         alpha: float = 0.5) -> tuple[float, FloatArray]:
    """PCKh@alpha over visible joints; returns (overall, per-joint) with NaN for joints never visible."""
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    v = np.asarray(visible, bool)
    d = np.linalg.norm(p - g, axis=-1)
    hit = d < alpha * np.asarray(head_sizes, np.float64)[:, None]
    per_joint = np.array([hit[v[:, k], k].mean() if v[:, k].any() else np.nan for k in range(v.shape[1])],
                         np.float32)
    overall = float(hit[v].mean()) if v.any() else float("nan")
    return overall, per_joint
