"""Accuracy of the default top-down model, stage by stage, on real images of both dev
sets: tests that fail when a stage (the refine pass, the "already tracked" filter, the
whole-frame fallback, steady temporal crops) is removed or made worse.

The parameters were chosen on coco17_dev; limbs12_dev is the check set (its figures in
README "Models"). AP thresholds are the level reached minus a small margin.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.pose import Poses
from edgepose.estimators.factory import open_estimator
from edgepose.estimators.nms import oks
from edgepose.estimators.topdown import TopDownEstimator
from tests.conftest import load_rgb, shared_path

# Reached (edgepose-tools evaluate, CPU): coco17_dev 0.679, limbs12_dev 0.381.
AP_FLOOR = {"coco17_dev": 0.665, "limbs12_dev": 0.372}


def _people(name: str) -> list[tuple[Path, list[tuple[np.ndarray, float]]]]:
    root = shared_path("data", name)
    coco = json.loads((root / "person_keypoints.json").read_text())
    out = []
    for im in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        out.append((root / "images" / im["file_name"],
                    [(np.array(a["keypoints"], np.float64).reshape(17, 3), float(a["area"])) for a in anns]))
    return out


def _oks(poses: Poses, gt: tuple[np.ndarray, float]) -> np.ndarray:
    """OKS of each pose against one ground-truth person."""
    g, area = gt
    return np.array([float(oks(poses.xy[i], g[:, :2], area, g[:, 2] > 0)) for i in range(len(poses))])


@pytest.fixture
def topdown() -> TopDownEstimator:
    est = open_estimator("movenet-multipose-fast", "cpu")
    assert isinstance(est, TopDownEstimator)
    yield est
    est.close()


def _with(est: TopDownEstimator, **changes: object) -> TopDownEstimator:
    est.params = replace(est.params, **changes)
    est._proposer.params = est.params  # type: ignore[attr-defined]
    return est


@pytest.mark.parametrize("name", ["coco17_dev", "limbs12_dev"])
def test_ap_on_both_dev_sets(name: str, topdown: TopDownEstimator) -> None:
    """Whole images, pycocotools AP; on limbs12_dev the refine pass is worth 0.027 AP and
    the agreement-weighted scores 0.012."""
    from tools.evaluate import evaluate_coco

    root = shared_path("data", name)
    (m,) = evaluate_coco([topdown], root / "person_keypoints.json", root / "images")["models"]
    assert m["AP"] >= AP_FLOOR[name], m


def test_a_person_only_the_whole_frame_fallback_finds(topdown: TopDownEstimator) -> None:
    """Upside down, the coco17_dev skier is nobody PoseNet's crops can pose (every crop
    pose too weak to keep); MoveNet on the whole frame, then on a crop around what it
    saw, finds them."""
    path, (gt,) = next((p, g) for p, g in _people("coco17_dev") if p.name == "coco__coco__000000000785.jpg")
    image = np.ascontiguousarray(load_rgb(path)[::-1, ::-1])
    h, w = image.shape[:2]
    g = gt[0].copy()
    g[:, 0], g[:, 1] = w - 1 - g[:, 0], h - 1 - g[:, 1]
    found = topdown.estimate(image)
    assert _oks(found.poses, (g, gt[1])).max() >= 0.5 and found.invokes >= 3
    none = _with(topdown, full_frame_fallback=False).estimate(image)
    assert len(none.poses) == 0 and none.invokes == found.invokes - 2  # two fewer: no person


def test_false_poses_rank_below_the_real_people(topdown: TopDownEstimator) -> None:
    """AI Challenger, three people and PoseNet's false poses on the background: every
    real person's pose (OKS >= 0.5) outscores every pose that matches nobody."""
    path, gts = next((p, g) for p, g in _people("limbs12_dev") if p.name.startswith("aic__ff945"))
    poses = topdown.estimate(load_rgb(path)).poses
    best = np.stack([_oks(poses, gt) for gt in gts], 1).max(1)
    real, false = poses.pose_scores[best >= 0.5], poses.pose_scores[best < 0.2]
    assert len(real) == 3 and len(false) >= 1
    assert real.min() > false.max(), (real, false)


def test_small_images_keep_their_person(topdown: TopDownEstimator) -> None:
    """The three JHMDB frames (320x240, limbs12_dev): the top-scored pose finds the one
    person in each (mean OKS 0.49 reached; PoseNet alone 0.74: room left)."""
    tops = []
    for path, gts in _people("limbs12_dev"):
        if path.name.startswith("jhmdb"):
            poses = topdown.estimate(load_rgb(path)).poses
            assert load_rgb(path).shape[:2] == (240, 320) and len(poses) >= 1
            tops.append(_oks(poses, gts[0])[int(np.argmax(poses.pose_scores))])
    assert len(tops) == 3 and np.mean(tops) >= 0.45 and min(tops) >= 0.35, tops


def one_person_oks(est: TopDownEstimator) -> tuple[list[float], list[float]]:
    """On each one-person image of both sets: the OKS of ``est``'s top-scored pose, and
    of MoveNet Lightning's pose once on the whole frame."""
    lightning = open_estimator("movenet-lightning", "cpu", crops=False)
    ours, theirs = [], []
    for name in ("coco17_dev", "limbs12_dev"):
        for path, gts in _people(name):
            if len(gts) != 1:
                continue
            image = load_rgb(path)
            poses = est.estimate(image).poses
            ours.append(float(_oks(poses, gts[0])[int(np.argmax(poses.pose_scores))]) if len(poses) else 0.0)
            theirs.append(float(_oks(lightning.estimate(image).poses, gts[0]).max()))
    lightning.close()
    return ours, theirs


def _held(topdown: TopDownEstimator, name: str) -> np.ndarray:
    """OKS of the top-scored pose on each of 5 identical frames, per one-person image."""
    rows = []
    for path, gts in _people(name):
        if len(gts) != 1:
            continue
        image = load_rgb(path)
        topdown.reset()
        row = []
        for t in range(5):
            poses = topdown.finish(topdown.invoke(topdown.prepare(image, t / 30))).poses
            row.append(_oks(poses, gts[0])[int(np.argmax(poses.pose_scores))] if len(poses) else 0.0)
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("name", ["coco17_dev", "limbs12_dev"])
def test_held_images_never_drift_below(name: str, topdown: TopDownEstimator) -> None:
    """Each one-person image held for 5 frames: the last frame's pose is at least as
    good as the first's and within 0.05 OKS of the best frame's (a moved crop that
    poses worse goes back to the previous crop)."""
    oks_ = _held(topdown, name)
    assert len(oks_) == 3
    assert (oks_[:, -1] >= oks_[:, 0]).all() and (oks_[:, -1] >= oks_.max(1) - 0.05).all(), oks_.round(3)


@pytest.mark.parametrize("name", [
    "coco17_dev",
    pytest.param("limbs12_dev", marks=pytest.mark.xfail(strict=True, reason=(
        "a JHMDB frame (320x240) poses badly on the first frame (OKS 0.38) and better "
        "once re-cropped (0.75-0.79): steady, but not from the first frame"))),
])
def test_held_images_give_steady_poses(name: str, topdown: TopDownEstimator) -> None:
    """Identical frames, steady poses: no frame more than 0.05 OKS below the best."""
    oks_ = _held(topdown, name)
    assert (oks_.max(1) - oks_.min(1) <= 0.05).all(), oks_.round(3)


def test_tracked_people_are_not_cropped_again_on_proposal_frames(
        topdown: TopDownEstimator, pose2sim_frames: list[np.ndarray]) -> None:
    """A proposal frame runs PoseNet once and crops only the people it finds that are
    not tracked already: with both people tracked, 1 + 2 invokes, not 1 + 2 + 2."""
    runs = [topdown.finish(topdown.invoke(topdown.prepare(f, i / 60))) for i, f in enumerate(pose2sim_frames[:6])]
    assert len(runs[5].poses) == 2 and "proposer_invoke_ms" in runs[5].timings
    assert runs[5].invokes == 3


def test_one_person_images_of_both_sets_lose_nothing_to_a_whole_frame_pass(topdown: TopDownEstimator) -> None:
    """The 6 one-person images of both sets: the default's top-scored pose is on average
    at least as good as MoveNet Lightning once on the whole frame (0.694 vs 0.655)."""
    ours, theirs = one_person_oks(topdown)
    assert len(ours) == 6 and np.mean(ours) >= np.mean(theirs) + 0.02, (ours, theirs)


def test_the_whole_frame_pass_crops_by_the_pipelines_threshold_and_is_followed(
        topdown: TopDownEstimator) -> None:
    """The upside-down skier again. With keypoint_threshold 0.9 the whole-frame pose has
    too few keypoints that sure to crop around: one invoke for it, none for a crop. Held
    for three frames at the default threshold, the person found on the whole frame is
    then followed on their crop: one invoke a frame, still the skier."""
    path, (gt,) = next((p, g) for p, g in _people("coco17_dev") if p.name == "coco__coco__000000000785.jpg")
    image = np.ascontiguousarray(load_rgb(path)[::-1, ::-1])
    h, w = image.shape[:2]
    g = gt[0].copy()
    g[:, 0], g[:, 1] = w - 1 - g[:, 0], h - 1 - g[:, 1]
    default = topdown.params
    strict = [_with(topdown, keypoint_threshold=0.9, full_frame_fallback=on).estimate(image).invokes
              for on in (True, False)]
    assert strict[0] - strict[1] == 1
    _with(topdown, **vars(default))
    frames = [topdown.finish(topdown.invoke(topdown.prepare(image, t / 30))) for t in range(3)]
    assert frames[0].invokes >= 3 and [f.invokes for f in frames[2:]] == [1]
    for f in frames:
        assert _oks(f.poses, (g, gt[1])).max() >= 0.5
