"""Temporal filters on ``Poses``: ``filter(poses, t) -> Poses`` with ``t`` the capture time
in seconds. Timestamp-driven because Pi frame rates vary; t = 0.0 is a valid time.

- ``PoseTracker`` gives each pose a ``track_id`` that follows the person (box IoU,
  Hungarian matching with scipy).
- ``OneEuroSmoother`` smooths keypoints per track (or per pose index when untracked)
  with the One Euro filter (Casiez et al., CHI 2012): little lag when moving fast,
  little jitter when still.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.estimators.crops import box_iou

PoseFilter = Callable[[Poses, float], Poses]


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class _EuroState:
    t: float
    x: npt.NDArray[np.float32]
    dx: npt.NDArray[np.float32]


class OneEuroSmoother:
    """One Euro filter on keypoint coordinates (pixels).

    ``min_cutoff`` (Hz) sets the smoothing when still, ``beta`` how fast the cutoff rises
    with speed (per pixel/s), ``d_cutoff`` (Hz) the smoothing of the speed estimate.
    State per track id; tracks unseen for ``forget_after`` seconds are dropped.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0,
                 forget_after: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ConfigError(f"One Euro parameters min_cutoff={min_cutoff}, beta={beta}, "
                              f"d_cutoff={d_cutoff}: cutoffs must be > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.forget_after = forget_after
        self._state: dict[int, _EuroState] = {}

    def _step(self, key: int, x: npt.NDArray[np.float32], t: float) -> npt.NDArray[np.float32]:
        s = self._state.get(key)
        if s is None or t - s.t > self.forget_after:
            self._state[key] = _EuroState(t, x.copy(), np.zeros_like(x))
            return x
        dt = t - s.t
        if dt <= 0:  # same or older timestamp: nothing new to learn
            return s.x.copy()
        dx = (x - s.x) / dt
        dx_hat = s.dx + _alpha(self.d_cutoff, dt) * (dx - s.dx)
        speed = np.linalg.norm(dx_hat, axis=-1, keepdims=True)
        cutoff = self.min_cutoff + self.beta * speed
        a = 1.0 / (1.0 + (1.0 / (2.0 * np.pi * cutoff)) / dt)
        x_hat = (s.x + a * (x - s.x)).astype(np.float32)
        self._state[key] = _EuroState(t, x_hat, dx_hat.astype(np.float32))
        return x_hat

    def __call__(self, poses: Poses, t: float) -> Poses:
        keys = (poses.track_ids.tolist() if poses.track_ids is not None
                else list(range(len(poses))))
        xy = np.stack([self._step(int(k), poses.xy[i], t) for i, k in enumerate(keys)]) \
            if len(poses) else poses.xy
        self._state = {k: s for k, s in self._state.items() if t - s.t <= self.forget_after}
        return Poses(xy, poses.scores, poses.pose_scores, poses.schema, poses.track_ids)


class PoseTracker:
    """Assigns ``track_ids``: each pose's keypoint box is matched to the live tracks by
    IoU (optimal assignment); a match needs IoU >= ``min_iou``; unmatched poses start new
    tracks; tracks unseen for ``max_age`` seconds end.

    Poses that come with track ids already (a top-down estimator follows each person
    from crop to crop, which is a better tracker than box overlap) keep them.
    """

    def __init__(self, min_iou: float = 0.3, max_age: float = 1.0,
                 keypoint_threshold: float = 0.2) -> None:
        try:
            from scipy.optimize import linear_sum_assignment
        except ImportError:
            raise ConfigError("--track needs scipy: pip install scipy "
                              "(or sudo apt install python3-scipy on the Pi)") from None
        self._assign: Any = linear_sum_assignment
        self.min_iou, self.max_age, self.keypoint_threshold = min_iou, max_age, keypoint_threshold
        self._boxes: dict[int, npt.NDArray[np.float32]] = {}
        self._seen: dict[int, float] = {}
        self._next_id = 0

    def __call__(self, poses: Poses, t: float) -> Poses:
        if poses.track_ids is not None and bool((poses.track_ids >= 0).all()):
            return poses
        self._seen = {k: v for k, v in self._seen.items() if t - v <= self.max_age}
        self._boxes = {k: v for k, v in self._boxes.items() if k in self._seen}
        boxes = poses.boxes(self.keypoint_threshold)
        ids = np.full(len(poses), -1, np.int64)
        track_ids = list(self._boxes)
        if track_ids and len(poses):
            iou = box_iou(boxes, np.stack([self._boxes[k] for k in track_ids]))
            rows, cols = self._assign(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou:
                    ids[r] = track_ids[c]
        for i in range(len(poses)):
            if ids[i] < 0:
                ids[i] = self._next_id
                self._next_id += 1
            if not np.isnan(boxes[i]).any():
                self._boxes[int(ids[i])] = boxes[i]
                self._seen[int(ids[i])] = t
        return Poses(poses.xy, poses.scores, poses.pose_scores, poses.schema, ids)


def make_filters(*, smooth: bool = False, track: bool = False) -> list[PoseFilter]:
    """The filters for ``--track`` / ``--smooth``, tracker first so smoothing follows people."""
    out: list[PoseFilter] = []
    if track:
        out.append(PoseTracker())
    if smooth:
        out.append(OneEuroSmoother())
    return out
