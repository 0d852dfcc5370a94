"""One Euro smoothing and IoU tracking, timestamp-driven."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.app.filters import OneEuroSmoother, PoseTracker, make_filters
from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.estimators.crops import box_iou


def _person(cx: float, cy: float, size: float = 50.0, score: float = 0.9) -> Poses:
    rng = np.random.default_rng(int(cx * 7 + cy))
    xy = np.array([cx, cy], np.float32) + rng.uniform(-size, size, (1, 17, 2)).astype(np.float32)
    return Poses(xy, np.full((1, 17), score, np.float32), np.array([score], np.float32))


def _smooth_series(t: np.ndarray, x: np.ndarray, **params: float) -> np.ndarray:
    f = OneEuroSmoother(**params)
    ones = np.ones((1, 17), np.float32)
    return np.array([f(Poses(np.full((1, 17, 2), v, np.float32), ones, np.ones(1, np.float32)),
                       float(ti)).xy[0, 0, 0] for ti, v in zip(t, x)])


@pytest.mark.parametrize("amplitude, max_err_ratio, max_jitter_ratio", [
    (0.0, 0.5, 0.5),    # a still person: much closer to the truth than the raw keypoints
    (100.0, 2.0, 0.5),  # moving at up to ~190 px/s: a little lag, far less jitter
])
def test_one_euro_trades_a_little_lag_for_much_less_jitter(
        amplitude: float, max_err_ratio: float, max_jitter_ratio: float) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(0, 4, 1 / 30)  # 4 s at 30 fps, starting at t = 0.0
    truth = 300 + amplitude * np.sin(2 * np.pi * 0.3 * t)
    noisy = truth + rng.normal(0, 4.0, t.size)
    out = _smooth_series(t, noisy, min_cutoff=1.0, beta=0.01)
    assert out[0] == pytest.approx(noisy[0])  # t = 0.0 is a real first sample
    raw_err = np.abs(noisy - truth)[30:].mean()
    assert np.abs(out - truth)[30:].mean() < max_err_ratio * raw_err
    jitter = np.abs(np.diff(out, 2)).mean() / np.abs(np.diff(noisy, 2)).mean()
    assert jitter < max_jitter_ratio


def test_one_euro_follows_a_fast_jump_quickly_and_forgets_old_tracks() -> None:
    f = OneEuroSmoother(min_cutoff=1.0, beta=0.05, forget_after=0.5)
    mk = lambda x: Poses(np.full((1, 17, 2), x, np.float32), np.ones((1, 17), np.float32),  # noqa: E731
                         np.ones(1, np.float32))
    for i in range(10):
        f(mk(0.0), i / 30)
    ys = [f(mk(500.0), (10 + i) / 30).xy[0, 0, 0] for i in range(10)]
    assert ys[-1] > 450  # beta lets the cutoff rise with speed: little lag
    assert f(mk(500.0), 19 / 30).xy[0, 0, 0] == ys[-1]  # same timestamp: unchanged
    assert f(mk(10.0), 5.0).xy[0, 0, 0] == 10.0  # after a gap the track restarts


def test_tracker_keeps_ids_with_people_whatever_their_order() -> None:
    tr = PoseTracker(min_iou=0.3, max_age=0.5)
    ids = []
    for i in range(6):
        a, b = _person(100 + 5 * i, 200), _person(400 - 5 * i, 200)
        order = [a, b] if i % 2 == 0 else [b, a]  # decoders list people in any order
        out = tr(Poses.concat(order), i / 30)
        assert out.track_ids is not None
        left = int(np.argmin(out.xy[:, :, 0].mean(1)))
        ids.append((int(out.track_ids[left]), int(out.track_ids[1 - left])))
    assert len(set(ids)) == 1 and ids[0][0] != ids[0][1]
    # a person gone for longer than max_age comes back with a new id
    out = tr(Poses.concat([_person(130, 200)]), 2.0)
    assert int(out.track_ids[0]) not in ids[0]


def test_box_iou_and_bad_parameters() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [np.nan] * 4], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 0.0]])
    with pytest.raises(ConfigError, match="cutoffs must be > 0"):
        OneEuroSmoother(min_cutoff=0)
    kinds = [type(f).__name__ for f in make_filters(smooth=True, track=True)]
    assert kinds == ["PoseTracker", "OneEuroSmoother"]


@pytest.mark.parametrize("shift, same", [
    (10.0, True),    # moved a little: boxes overlap well above min_iou, the same person
    (60.0, False),   # half a box away: IoU about 0.05, below min_iou: someone else
    (500.0, False),  # no overlap at all
])
def test_a_track_continues_only_above_the_iou_gate(shift: float, same: bool) -> None:
    """One person per frame: the assignment always pairs them, the IoU gate decides."""
    tr = PoseTracker(min_iou=0.3, max_age=1.0)
    first = tr(_person(200, 200), 0.0)
    moved = _person(200, 200)
    moved = Poses(moved.xy + np.array([shift, 0], np.float32), moved.scores, moved.pose_scores)
    iou = float(box_iou(first.boxes(0.2), moved.boxes(0.2))[0, 0])
    assert (iou >= 0.3) is same  # the cases straddle the gate
    second = tr(moved, 0.1)
    assert (int(second.track_ids[0]) == int(first.track_ids[0])) is same


def _with_ids(poses: Poses, ids: list[int]) -> Poses:
    return Poses(poses.xy, poses.scores, poses.pose_scores, poses.schema, np.array(ids, np.int64))


@pytest.mark.parametrize("ids", [[7, 9], [0, 3]])
def test_poses_with_track_ids_keep_them(ids: list[int]) -> None:
    """A top-down estimator's ids (0 included) are better than box overlap: kept as given."""
    tr = PoseTracker()
    people = Poses.concat([_person(100, 200), _person(400, 200)])
    assert tr(_with_ids(people, ids), 0.0).track_ids.tolist() == ids
    # ids with a gap (-1: not tracked) are assigned by the tracker
    assert tr(_with_ids(people, [ids[0], -1]), 0.1).track_ids.tolist() == [0, 1]


def test_new_tracks_are_numbered_one_by_one() -> None:
    tr = PoseTracker()
    out = tr(Poses.concat([_person(100, 100), _person(400, 100), _person(700, 100)]), 0.0)
    assert out.track_ids.tolist() == [0, 1, 2]


def test_a_match_at_exactly_the_gate_and_the_age_continues() -> None:
    """The gate is IoU >= min_iou and a track lives max_age seconds inclusive."""
    a = _person(200, 200)
    b = Poses(a.xy + np.array([20, 0], np.float32), a.scores, a.pose_scores)
    iou = float(box_iou(a.boxes(0.2), b.boxes(0.2))[0, 0])
    assert 0 < iou < 1
    tr = PoseTracker(min_iou=iou, max_age=0.5)
    first = tr(a, 0.0)
    assert tr(b, 0.5).track_ids.tolist() == first.track_ids.tolist()
    assert tr(b, 1.01).track_ids.tolist() != first.track_ids.tolist()  # unseen for longer: a new id


def test_the_smoother_follows_track_ids_not_list_order() -> None:
    """Two people listed in the other order in the next frame: each is smoothed with its
    own history (keyed by track id), not with the other person's."""
    f = OneEuroSmoother(min_cutoff=0.5, beta=0.0)
    a = Poses(np.full((1, 17, 2), 100.0, np.float32), np.ones((1, 17), np.float32), np.ones(1, np.float32))
    b = Poses(np.full((1, 17, 2), 500.0, np.float32), np.ones((1, 17), np.float32), np.ones(1, np.float32))
    f(_with_ids(Poses.concat([a, b]), [1, 2]), 0.0)
    out = f(_with_ids(Poses.concat([b, a]), [2, 1]), 0.1)
    assert out.xy[0, 0, 0] == pytest.approx(500.0) and out.xy[1, 0, 0] == pytest.approx(100.0)


def test_make_filters_puts_the_tracker_first() -> None:
    assert [type(f) for f in make_filters(track=True, smooth=True)] == [PoseTracker, OneEuroSmoother]
    assert make_filters() == []
