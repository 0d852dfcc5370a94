"""Boxes and crops: the geometry, the pixels cut out, and the transform back."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgepose.core.errors import ModelError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import resize
from edgepose.core.schemas import Coco
from edgepose.estimators.crops import Box, box_iou, crop, crop_resize, person_boxes, pose_box, to_source, torso_box


def _image(h: int = 60, w: int = 80) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_box_geometry() -> None:
    b = Box(10, 20, 30, 60, 0.5)
    assert (b.width, b.height, b.center, b.area) == (20, 40, (20, 40), 800)
    s = b.squared()
    assert (s.width, s.height, s.center, s.score) == (40, 40, (20, 40), 0.5)
    g = b.scaled(1.5)
    assert (g.width, g.height, g.center) == (30, 60, (20, 40))
    assert b.iou(b) == 1.0 and b.iou(Box(30, 20, 50, 60)) == 0.0
    assert Box(0, 0, 10, 10).iou(Box(5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_clipped_keeps_the_shape_within_reach_of_the_frame() -> None:
    big = Box.around(-50, 30, 500).clipped(100, 200)  # larger than the frame, centre outside
    assert big.width == big.height == 200 and big.center == (0, 30)
    inside = Box(10, 10, 40, 40)
    assert inside.clipped(100, 200) == inside


def test_crop_pads_outside_the_image() -> None:
    image = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    out, t = crop(image, Box.around(2.0, 3.0, 8))
    assert out.shape == (8, 8, 3) and t.to_source([[0, 0]]).tolist() == [[-2, -1]]
    assert np.array_equal(out[1:, 2:], image[:7, :6]) and not out[0].any() and not out[:, :2].any()


def test_crop_resize_equals_crop_then_resize() -> None:
    """One resampling from the frame gives what a crop then a resize would, and the
    composed transform maps crop pixels to the same frame pixels."""
    image = _image(120, 160)
    box = Box(20, 10, 100, 90)  # 80 x 80
    direct, t = crop_resize(image, box, (40, 40))
    region, to_region = crop(image, box)
    resized, to_model = resize(region, (40, 40), "stretch")
    two_step = to_region.then(to_model)
    pts = np.array([[0, 0], [39, 39], [12.5, 30]], np.float32)
    np.testing.assert_allclose(t.to_source(pts), two_step.to_source(pts), atol=1e-4)
    np.testing.assert_allclose(t.to_source([[0, 0], [40, 40]]), [[20, 10], [100, 90]], atol=1e-4)
    # 2x downscale with bilinear sampling at pixel centres: each output pixel is the
    # mean of a 2x2 block, as cv2.resize's INTER_LINEAR gives for an exact 2x
    assert np.abs(direct.astype(int) - resized.astype(int)).max() <= 1


def test_crop_resize_past_the_edge_is_zero_padded() -> None:
    image = np.full((50, 50, 3), 200, np.uint8)
    out, t = crop_resize(image, Box(-50, 0, 50, 100), (20, 20))
    assert not out[:, :9].any() and (out[:10, 11:] == 200).all() and not out[11:].any()
    np.testing.assert_allclose(t.to_source([[10, 10]]), [[0, 50]])


@pytest.mark.parametrize("box", [Box(10, 10, 10, 30), Box(5, 5, 1, 9), Box(0, 0, np.nan, 10)])
def test_empty_boxes_are_refused(box: Box) -> None:
    with pytest.raises(ModelError, match="empty or undefined box"):
        crop_resize(_image(), box, (8, 8))


def _pose(points: dict[int, tuple[float, float]], score: float = 0.9) -> Poses:
    xy = np.zeros((1, 17, 2), np.float32)
    scores = np.zeros((1, 17), np.float32)
    for k, (x, y) in points.items():
        xy[0, k], scores[0, k] = (x, y), score
    return Poses(xy, scores, scores.mean(axis=1))


def test_pose_and_person_boxes() -> None:
    p = _pose({Coco.NOSE: (100, 50), Coco.LEFT_ANKLE: (120, 250), Coco.RIGHT_ANKLE: (80, 240)})
    assert pose_box(p.xy[0], p.scores[0]) == Box(80, 50, 120, 250, pytest.approx(0.9))
    (b,) = person_boxes(p, (400, 400), margin=1.5)
    assert b.width == b.height == pytest.approx(300) and b.center == pytest.approx((100, 150))
    assert b.score == pytest.approx(p.pose_scores[0])
    one = _pose({Coco.NOSE: (100, 50)})  # one keypoint tells where, not how big
    assert pose_box(one.xy[0], one.scores[0]) is None and person_boxes(one, (400, 400)) == []


def test_crop_results_map_back_with_to_source() -> None:
    p = _pose({Coco.NOSE: (0, 0), Coco.LEFT_HIP: (40, 40)})
    _, t = crop_resize(_image(), Box(10, 20, 30, 40), (40, 40))
    back = to_source(p, t)
    np.testing.assert_allclose(back.xy[0, [0, 11]], [[10, 20], [30, 40]])
    assert back.scores is p.scores


def test_torso_box_follows_the_movenet_tutorial() -> None:
    """Hips' midpoint in the centre; half-side = max(1.9 x torso reach, 1.2 x body reach)."""
    pts = {Coco.LEFT_HIP: (110, 300), Coco.RIGHT_HIP: (90, 300),
           Coco.LEFT_SHOULDER: (115, 200), Coco.RIGHT_SHOULDER: (85, 200),
           Coco.LEFT_ANKLE: (100, 480)}
    b = torso_box(*_arrays(_pose(pts)), (600, 400))
    assert b is not None and b.center == pytest.approx((100, 300))
    assert b.width == pytest.approx(2 * max(1.9 * 100, 1.2 * 180))
    no_hips = {k: v for k, v in pts.items() if k not in (Coco.LEFT_HIP, Coco.RIGHT_HIP)}
    assert torso_box(*_arrays(_pose(no_hips)), (600, 400)) is None  # torso not seen
    # a crop larger than the frame is no crop: the whole frame is the better input
    assert torso_box(*_arrays(_pose(pts)), (300, 200)) is None


def _arrays(p: Poses) -> tuple[np.ndarray, np.ndarray]:
    return p.xy[0], p.scores[0]


def test_without_opencv_the_crop_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's core install has no OpenCV: PIL's affine sampling stands in."""
    image = _image(120, 160)
    box = Box(-13.5, 7.25, 91.0, 111.75)
    with_cv2, t1 = crop_resize(image, box, (48, 48))
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    without, t2 = crop_resize(image, box, (48, 48))
    assert t1 == t2 and without.shape == with_cv2.shape
    assert np.abs(without.astype(int) - with_cv2.astype(int)).max() <= 1  # rounding only


def test_iou_of_boxes_that_cannot_overlap() -> None:
    """Disjoint boxes (apart on either axis only) overlap 0, not a negative area; NaN boxes
    (a pose with no box) and zero-area boxes overlap nothing, themselves included."""
    a = np.array([[0, 0, 10, 10]], np.float64)
    apart = np.array([[20, 0, 30, 10], [0, 20, 10, 30], [20, 20, 30, 30], [-15, 12, 15, 14]])
    assert (box_iou(a, apart) == 0).all()
    nan = np.array([[np.nan, np.nan, np.nan, np.nan]])
    assert box_iou(nan, nan)[0, 0] == 0 and box_iou(a, nan)[0, 0] == 0 and box_iou(nan, a)[0, 0] == 0
    dot = np.array([[5, 5, 5, 5]], np.float64)
    assert box_iou(dot, dot)[0, 0] == 0 and box_iou(dot, a)[0, 0] == 0
    half = np.array([[5, 0, 15, 10]], np.float64)  # a union below 1 px^2 is still a union
    assert box_iou(a * 0.01, half * 0.01)[0, 0] == pytest.approx(50 / 150)
    assert Box(0, 0, 10, 10).iou(Box(0, 5, 10, 15)) == pytest.approx(50 / 150)
    # boxes wider than tall: the overlap's width from the x corners, its height from the y ones
    assert box_iou([[0, 0, 20, 10]], [[10, 0, 30, 4]])[0, 0] == pytest.approx(40 / 240)
    assert box_iou([[10, 0, 30, 4]], [[0, 0, 20, 10]])[0, 0] == pytest.approx(40 / 240)


def test_torso_box_needs_both_a_hip_and_a_shoulder_and_keeps_the_pose_score() -> None:
    pts = {Coco.LEFT_HIP: (110, 300), Coco.RIGHT_HIP: (90, 300),
           Coco.LEFT_SHOULDER: (115, 200), Coco.RIGHT_SHOULDER: (85, 200)}
    only_hips = {k: v for k, v in pts.items() if k in (Coco.LEFT_HIP, Coco.RIGHT_HIP)}
    assert torso_box(*_arrays(_pose(only_hips)), (600, 400)) is None
    p = _pose(pts, score=0.6)
    b = torso_box(*_arrays(p), (600, 400))
    assert b is not None and b.score == pytest.approx(float(p.scores[0].mean()))
    # keypoints exactly at the threshold are not seen: no torso
    assert torso_box(*_arrays(_pose(pts, score=0.2)), (600, 400), keypoint_threshold=0.2) is None


def test_torso_box_half_side_is_capped_by_the_frame() -> None:
    """A wide-armed pose (body reach 400 px) centred in a square frame: the half-side stops
    at the centre's farthest distance to an edge (200 px), so the crop is the frame. (Off
    centre that distance exceeds half the frame's longer side and the crop is refused as
    too large anyway: the cap acts only for a centred person.)"""
    pts = {Coco.LEFT_HIP: (205, 200), Coco.RIGHT_HIP: (195, 200),
           Coco.LEFT_SHOULDER: (205, 190), Coco.RIGHT_SHOULDER: (195, 190),
           Coco.LEFT_WRIST: (600, 200), Coco.RIGHT_WRIST: (200, 600)}
    b = torso_box(*_arrays(_pose(pts)), (400, 400))
    assert b is not None and b.width == pytest.approx(400) and b.center == pytest.approx((200, 200))


def test_torso_box_of_a_tiny_person_is_none_but_one_just_big_enough_is_kept() -> None:
    def at(reach: float) -> Box | None:
        pts = {Coco.LEFT_HIP: (100 + reach / 1.9, 100), Coco.RIGHT_HIP: (100 - reach / 1.9, 100),
               Coco.LEFT_SHOULDER: (100, 100), Coco.RIGHT_SHOULDER: (100, 100)}
        return torso_box(*_arrays(_pose(pts)), (400, 400))

    assert at(3.9) is None  # 2 x 3.9 = 7.8 px < 8 px
    b = at(4.01)
    assert b is not None and b.width == pytest.approx(8.02)


def test_crop_of_a_sub_pixel_box_is_one_pixel_and_maps_to_the_frame() -> None:
    image = _image(60, 80)
    out, t = crop(image, Box(10.2, 20.2, 10.4, 20.4))
    assert out.shape == (1, 1, 3) and (out[0, 0] == image[20, 10]).all()
    assert t.source_size == (60, 80)
    np.testing.assert_allclose(t.to_source([[0.5, 0.5]]), [[10.5, 20.5]])


def test_to_source_keeps_the_track_ids() -> None:
    p = _pose({Coco.NOSE: (0, 0), Coco.LEFT_HIP: (40, 40)})
    p = Poses(p.xy, p.scores, p.pose_scores, p.schema, np.array([7]))
    _, t = crop_resize(_image(), Box(10, 20, 30, 40), (40, 40))
    assert to_source(p, t).track_ids.tolist() == [7]
