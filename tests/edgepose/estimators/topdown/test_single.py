"""One person on a crop around them: two passes on a still image, temporal crops on video."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.estimators.base import Estimate, SingleModelEstimator
from edgepose.estimators.crops import torso_box
from edgepose.estimators.single import SinglePersonEstimator
from edgepose.inference.engine import open_engine
from tests.conftest import load_rgb, shared_path


@pytest.fixture
def est() -> SinglePersonEstimator:
    e = SinglePersonEstimator(open_engine("movenet-lightning", "cpu"))
    yield e
    e.close()


def _run(e: SinglePersonEstimator, image: np.ndarray) -> Estimate:
    """One frame through the pipeline's three stages, as the pipeline calls them."""
    return e.finish(e.invoke(e.prepare(image, 0.0)))


def test_still_image_second_pass_is_on_the_crop_around_the_first(est: SinglePersonEstimator) -> None:
    image = load_rgb(shared_path("images", "tfexamples_image1.png"))
    one = SingleModelEstimator(open_engine("movenet-lightning", "cpu")).estimate(image)
    two = est.estimate(image)
    assert (one.invokes, two.invokes) == (1, 2)
    assert two.timings["invoke_ms"] > 0 and two.timings["preprocess_ms"] > 0
    box = torso_box(one.poses.xy[0], one.poses.scores[0], image.shape[:2])
    assert box is not None and box.width < max(image.shape[:2])  # a real crop, not the frame
    moved = np.linalg.norm(two.poses.xy[0] - one.poses.xy[0], axis=-1)
    assert 0 < np.median(moved) < 0.05 * box.width  # refined, not somewhere else
    assert _run(est, image).invokes == 1  # estimate() left nothing for the next frame


def test_video_frames_use_the_previous_frame_crop(est: SinglePersonEstimator,
                                                  pose2sim_frames: list[np.ndarray]) -> None:
    runs = [_run(est, f) for f in pose2sim_frames[:6]]
    assert [r.invokes for r in runs] == [1] * 6  # first on the frame, then on crops
    first_full = SingleModelEstimator(open_engine("movenet-lightning", "cpu")).estimate(pose2sim_frames[0])
    np.testing.assert_allclose(runs[0].poses.xy, first_full.poses.xy, atol=1e-3)
    later_full = SingleModelEstimator(open_engine("movenet-lightning", "cpu")).estimate(pose2sim_frames[5])
    assert np.abs(runs[5].poses.xy - later_full.poses.xy).max() > 1.0  # a crop, not the frame
    assert runs[5].poses.pose_scores[0] > 0.5


def test_a_lost_person_is_looked_for_in_the_whole_frame_at_once(
        est: SinglePersonEstimator, pose2sim_frames: list[np.ndarray]) -> None:
    for f in pose2sim_frames[:3]:
        _run(est, f)
    blank = np.zeros_like(pose2sim_frames[0])
    lost = _run(est, blank)
    assert lost.invokes == 2  # the crop found no torso: the same frame again, whole
    assert _run(est, blank).invokes == 1  # nothing to follow: whole frame only
    assert _run(est, pose2sim_frames[3]).invokes == 1


def test_reset_starts_the_next_frame_on_the_whole_frame(
        est: SinglePersonEstimator, pose2sim_frames: list[np.ndarray]) -> None:
    for f in pose2sim_frames[:3]:
        _run(est, f)
    est.reset()
    after = _run(est, pose2sim_frames[5])
    whole = SingleModelEstimator(open_engine("movenet-lightning", "cpu")).estimate(pose2sim_frames[5])
    assert after.invokes == 1 and after.device == "cpu"
    np.testing.assert_allclose(after.poses.xy, whole.poses.xy, atol=1e-3)  # not the old crop


def test_keypoint_threshold_decides_which_keypoints_place_the_crop(
        pose2sim_frames: list[np.ndarray]) -> None:
    """Above every keypoint's score no torso is ever found: each frame runs whole, so the
    poses are the whole-frame model's; at the default the frames after the first are crops."""
    whole = SingleModelEstimator(open_engine("movenet-lightning", "cpu"))
    strict = SinglePersonEstimator(open_engine("movenet-lightning", "cpu"), keypoint_threshold=0.999)
    try:
        for f in pose2sim_frames[:4]:
            got = _run(strict, f)
            assert got.invokes == 1
            np.testing.assert_allclose(got.poses.xy, whole.estimate(f).poses.xy, atol=1e-3)
        assert strict.estimate(pose2sim_frames[0]).invokes == 1  # a still: no crop to refine on
    finally:
        strict.close()
        whole.close()
