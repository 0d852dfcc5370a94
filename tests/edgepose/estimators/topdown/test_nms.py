"""OKS between poses and duplicate removal, on MoveNet's real poses."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.pose import Poses
from edgepose.estimators.crops import Box, crop, to_source
from edgepose.estimators.nms import COCO_SIGMAS, keypoint_sigmas, oks_matrix, pose_nms
from edgepose.estimators.single import SinglePersonEstimator
from edgepose.inference.engine import open_engine
from tests.conftest import load_rgb, shared_path


def test_sigmas_per_schema() -> None:
    assert keypoint_sigmas("coco17") is COCO_SIGMAS and len(COCO_SIGMAS) == 17
    mpii = keypoint_sigmas("mpii16")
    assert len(mpii) == 16 and mpii[0] == COCO_SIGMAS[16]  # right ankle in both


def test_oks_is_one_for_the_same_pose_and_falls_with_distance() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(100, 200, (1, 17, 2)).astype(np.float32)
    scores = np.full((1, 17), 0.9, np.float32)
    shifted = [xy + d for d in (0.0, 2.0, 10.0, 200.0)]
    p = Poses(np.concatenate(shifted), np.repeat(scores, 4, 0), np.full(4, 0.9, np.float32))
    sim = oks_matrix(p)
    assert sim[0, 0] == pytest.approx(1.0)
    assert 1.0 > sim[1, 0] > sim[2, 0] > sim[3, 0] and sim[3, 0] < 1e-6
    hidden = Poses(p.xy[:2], np.stack([scores[0], np.zeros(17, np.float32)]), p.pose_scores[:2])
    assert oks_matrix(hidden)[0, 1] == 0.0  # no keypoint seen by both


@pytest.fixture(scope="module")
def couple_poses() -> Poses:
    """MoveNet's poses of the two people of posenet_test_couple.jpg, each found twice
    (two crops of different size around each person)."""
    image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
    est = SinglePersonEstimator(open_engine("movenet-lightning", "cpu"))
    h, w = image.shape[:2]
    found = []
    for cx in (0.40 * w, 0.62 * w):  # the man, the woman (the image's two people)
        for side in (0.55 * h, 0.7 * h):
            region = Box.around(cx, 0.5 * h, side)
            sub, t = crop(image, region)
            found.append(to_source(est.estimate(sub).poses, t))
    est.close()
    return Poses.concat(found)


def test_nms_keeps_one_pose_per_person(couple_poses: Poses) -> None:
    keep, groups = pose_nms(couple_poses, threshold=0.5)
    assert len(keep) == 2
    assert sorted(sorted(g) for g in groups) == [[0, 1], [2, 3]]  # each with its duplicate
    assert all(couple_poses.pose_scores[g[0]] == max(couple_poses.pose_scores[g]) for g in groups)
    sim = oks_matrix(couple_poses)
    assert sim[0, 1] > 0.8 and sim[2, 3] > 0.8 and sim[0, 2] < 0.1  # same person vs another
