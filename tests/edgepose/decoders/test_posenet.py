"""PoseNet decoders on Coral's real backbones, against Coral's C++ PosenetDecoderOp output."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform, resize
from edgepose.core.schemas import Coco
from edgepose.decoders import DECODERS, OutputTensor, get_decoder
from tests.conftest import load_rgb, shared_path
from tests.edgepose.conftest import RunModel, pil_resize

RESOLUTIONS = [(353, 481), (481, 641), (721, 1281)]
# The options Coral's decoder op was built with (project-posenet).
CORAL_OPTIONS = dict(max_detections=20, score_threshold=0.2, nms_radius=10, output_stride=16)
# project-posenet's own test tolerances.
PX_TOL, SCORE_TOL = 4.0, 0.1


def _model(h: int, w: int) -> str:
    return f"posenet_mobilenet_v1_075_{h}_{w}_quant.tflite"


def _reference(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coral's CSV as (n, 17, 2) x/y input pixels, (n, 17) scores, (n,) pose scores."""
    name = f"posenet_mobilenet_v1_075_{h}_{w}_quant_decoder_reference.csv"
    path = shared_path("models", "coral", name)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    n = len({r["pose_id"] for r in rows})
    xy, scores, pose_scores = np.zeros((n, 17, 2)), np.zeros((n, 17)), np.zeros(n)
    for r in rows:
        i, k = int(r["pose_id"]), Coco[r["keypoint_label"]]
        xy[i, k] = float(r["keypoint_x"]), float(r["keypoint_y"])
        scores[i, k] = float(r["keypoint_score"])
        pose_scores[i] = float(r["pose_score"])
    return xy, scores, pose_scores


def _couple_outputs(run_model: RunModel, h: int, w: int) -> list[OutputTensor]:
    # Coral resized with PIL's NEAREST. OpenCV's INTER_NEAREST samples a shifted pixel
    # grid (INTER_NEAREST_EXACT matches PIL), which alone costs ~10 % of the matches.
    image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
    return run_model(_model(h, w), pil_resize(image, (h, w), "nearest"))


@pytest.mark.parametrize("h,w", RESOLUTIONS)
def test_multi_pose_matches_coral_reference(run_model: RunModel, h: int, w: int) -> None:
    outputs = _couple_outputs(run_model, h, w)
    # Feed the resized image as the source: keypoints come out in input pixels.
    poses = get_decoder("posenet_multi")(outputs, Transform.identity(h, w), **CORAL_OPTIONS)
    assert_matches_coral_reference(poses, h, w)


def assert_matches_coral_reference(poses: Poses, h: int, w: int) -> None:
    """Poses in input pixels against Coral's CSV, with project-posenet's tolerances."""
    ref_xy, ref_scores, ref_pose_scores = _reference(h, w)
    assert np.sum(poses.pose_scores >= 0.2) == np.sum(ref_pose_scores >= 0.2)
    assert np.all(np.diff(poses.pose_scores) <= 0), "poses come best first"
    cost = np.linalg.norm(poses.xy[:, None] - ref_xy[None], axis=-1).mean(axis=-1)
    mine, theirs = linear_sum_assignment(cost)
    assert len(theirs) == len(ref_xy)
    hits, total = 0, 0
    for i, j in zip(mine, theirs):
        strong = ref_scores[j] >= 0.5
        dist = np.linalg.norm(poses.xy[i] - ref_xy[j], axis=-1)
        good = (dist <= PX_TOL) & (np.abs(poses.scores[i] - ref_scores[j]) <= SCORE_TOL)
        hits += int(good[strong].sum())
        total += int(strong.sum())
        assert abs(poses.pose_scores[i] - ref_pose_scores[j]) <= 0.05
    assert hits / total >= 0.9, f"{hits}/{total} reference keypoints matched"


def test_multi_pose_maps_back_to_source_pixels(run_model: RunModel) -> None:
    """Decoding with a stretch transform equals decoding in input pixels, then scaling."""
    h, w = 481, 641
    outputs = _couple_outputs(run_model, h, w)
    image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
    _, transform = resize(image, (h, w), mode="stretch", interpolation="nearest")
    in_source = get_decoder("posenet_multi")(outputs, transform, **CORAL_OPTIONS)
    in_input = get_decoder("posenet_multi")(outputs, Transform.identity(h, w), **CORAL_OPTIONS)
    scale = np.array([image.shape[1] / w, image.shape[0] / h], np.float32)
    np.testing.assert_allclose(in_source.xy, in_input.xy * scale, rtol=1e-5, atol=1e-3)
    # Every keypoint stays on the model input grid (cells 0 .. h-1 times stride 16).
    assert in_input.xy.min() >= 0 and in_input.xy[..., 0].max() <= w - 1
    assert np.all((in_input.scores >= 0) & (in_input.scores <= 1))


def test_multi_pose_limits_and_threshold(run_model: RunModel) -> None:
    outputs = _couple_outputs(run_model, 481, 641)
    t = Transform.identity(481, 641)
    one = get_decoder("posenet_multi")(outputs, t, **{**CORAL_OPTIONS, "max_detections": 1})
    assert len(one) == 1
    strict = get_decoder("posenet_multi")(outputs, t, score_threshold=0.8)
    assert len(strict) < 2 and np.all(strict.pose_scores >= 0.8)


def test_single_pose_agrees_with_multi_pose_top(run_model: RunModel) -> None:
    image = load_rgb(shared_path("images", "coral_squat.bmp"))
    x, transform = resize(image, (481, 641), mode="letterbox", interpolation="bilinear")
    outputs = run_model(_model(481, 641), x)
    single = get_decoder("posenet_single")(outputs, transform)
    multi = get_decoder("posenet_multi")(outputs, transform)
    assert len(single) == 1 and len(multi) >= 1
    strong = single.scores[0] >= 0.5
    assert strong.sum() >= 12
    # One output stride is 16 input px ~ 20 source px here. Argmax can pick another
    # peak of a keypoint's heatmap (multi-pose follows the skeleton instead), so: most
    # keypoints within one stride, and the typical one within a few pixels.
    dist = np.linalg.norm(single.xy[0] - multi.xy[0], axis=-1)[strong]
    assert np.median(dist) <= 8.0
    assert np.mean(dist <= 20.0) >= 0.8
    assert np.median(np.abs(single.scores[0] - multi.scores[0])[strong]) <= 0.1


def _posenet_outputs(h: int = 9, w: int = 11, heat: int = 17, short: int = 34,
                     mid: int = 64) -> list[OutputTensor]:
    rng = np.random.default_rng(0)
    return [OutputTensor(rng.integers(0, 255, (1, h, w, c), dtype=np.uint8), 0.08, 128, f"t{c}")
            for c in (heat, short, mid)]


@pytest.mark.parametrize("kind", ["posenet_single", "posenet_multi"])
@pytest.mark.parametrize("outputs", [
    pytest.param([], id="no-outputs"),
    pytest.param(_posenet_outputs()[:2], id="mid-offsets-missing"),
    pytest.param(_posenet_outputs(short=32), id="short-offsets-32-channels"),
    pytest.param(_posenet_outputs(heat=16), id="mpii-heatmaps"),
    pytest.param(_posenet_outputs() + _posenet_outputs()[:1], id="two-heatmaps"),
    pytest.param([OutputTensor(np.zeros((1, 1, 17, 3), np.float32))], id="movenet-output"),
    pytest.param([OutputTensor(np.zeros((1, 9, 11, 17))), OutputTensor(np.zeros((1, 9, 11, 34))),
                  OutputTensor(np.zeros((1, 5, 6, 64)))], id="grid-mismatch"),
    pytest.param(_posenet_outputs(h=1), id="one-row-grid"),
])
def test_bad_outputs_raise_model_error(kind: str, outputs: list[OutputTensor]) -> None:
    with pytest.raises(ModelError, match=f"don't fit decoder '{kind}'") as info:
        get_decoder(kind)(outputs, Transform.identity(129, 161))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind,params,expected", [
    ("posenet_multi", {"max_detections": 0}, "max_detections"),
    ("posenet_multi", {"score_threshold": 1.5}, "score_threshold"),
    ("posenet_multi", {"nms_radius": -1}, "nms_radius"),
    ("posenet_multi", {"output_stride": 0}, "output_stride"),
    ("posenet_multi", {"refine_steps": -1}, "refine_steps"),
    ("posenet_multi", {"nms_radus": 10}, "no parameter 'nms_radus'"),
    ("posenet_single", {"max_detections": 5}, "no parameter 'max_detections'"),
    ("posenet_single", {"schema": "mpii16"}, "schema 'mpii16'"),
])
def test_bad_params_raise_config_error(kind: str, params: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        get_decoder(kind)(_posenet_outputs(), Transform.identity(129, 161), **params)
    assert "\n" not in str(info.value)


def test_get_decoder_unknown_kind() -> None:
    assert set(DECODERS) == {"movenet", "posenet_single", "posenet_multi", "heatmap", "multipose"}
    with pytest.raises(ConfigError, match="unknown decoder 'openpose'.*posenet_multi"):
        get_decoder("openpose")


def test_float_outputs_decode_like_quantized(run_model: RunModel) -> None:
    """Dequantizing first (a float model, or a delegate that returns floats) changes nothing."""
    outputs = _couple_outputs(run_model, 353, 481)
    floats = [OutputTensor(o.dequantize(), name=o.name) for o in outputs]
    t = Transform.identity(353, 481)
    for kind in ("posenet_multi", "posenet_single"):
        a, b = get_decoder(kind)(outputs, t), get_decoder(kind)(floats, t)
        assert len(a) == len(b) >= 1
        np.testing.assert_allclose(a.xy, b.xy, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


@pytest.mark.parametrize("radius", [1, 2])
def test_candidates_are_scipy_local_maxima(run_model: RunModel, radius: int) -> None:
    """The fast candidate search equals scipy.ndimage.maximum_filter (ties included)."""
    from scipy.ndimage import maximum_filter

    from edgepose.decoders.posenet_multi import _candidates

    heat = next(o for o in _couple_outputs(run_model, 353, 481) if o.shape[3] == 17).data[0]
    rng = np.random.default_rng(radius)
    noisy = rng.integers(100, 110, heat.shape, dtype=np.uint8)  # many ties
    for h in (heat, noisy, noisy.astype(np.float32)):
        threshold = 104.5
        peak = maximum_filter(h, size=(2 * radius + 1, 2 * radius + 1, 1), mode="nearest")
        expected = set(zip(*np.nonzero((h >= threshold) & (h == peak))))
        ys, xs, ks = _candidates(h, threshold, radius)
        assert set(zip(ys, xs, ks)) == expected and len(ys) == len(expected) > 0
        assert np.all(np.diff(h[ys, xs, ks].astype(float)) <= 0), "best first"


@pytest.mark.parametrize("kind", ["posenet_single", "posenet_multi"])
def test_the_smallest_grid_decodes(kind: str) -> None:
    """2 x 2 cells is the least the decoders take (one cell is refused above)."""
    poses = get_decoder(kind)(_posenet_outputs(h=2, w=2), Transform.identity(17, 17), output_stride=16)
    assert poses.schema == "coco17" and np.isfinite(poses.xy).all()
