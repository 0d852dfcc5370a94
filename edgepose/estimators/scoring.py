"""Pose scores that say how good a pose is, so that candidates from different stages
(a landmark crop, the proposer's own pose, the whole frame) compete on one scale in the
merge and a false pose ranks below a real person."""

from __future__ import annotations

import numpy as np

from edgepose.core.pose import Poses


def rescored(poses: Poses, weight: float) -> Poses:
    """``poses`` with their pose scores multiplied by ``weight``."""
    return Poses(poses.xy, poses.scores, (poses.pose_scores * weight).astype(np.float32),
                 poses.schema, poses.track_ids)


def agreement_scored(pose: Poses, other: Poses, weight: float, keypoint_threshold: float = 0.2) -> Poses:
    """``pose`` (one) scored down where ``other`` (another stage's pose of the same
    person) disagrees: score x (1 - weight + weight x OKS between the two)."""
    from edgepose.estimators.nms import oks_matrix

    sim = oks_matrix(Poses.concat([pose, other]), keypoint_threshold)
    agree = max(float(sim[0, 1]), float(sim[1, 0]))
    return rescored(pose, 1.0 - weight + weight * agree)
