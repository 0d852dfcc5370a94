"""Heatmap argmax decoder on Gaussians placed at known sub-pixel positions.

The rule under test (Simple Baselines' ``get_final_preds``): take the argmax cell, then
step a quarter pixel toward the higher neighbour on each axis. For a Gaussian centred
at c the argmax is round(c) and the higher neighbour lies on c's side, so the rule's
answer is ``round(c) + 0.25 * sign(c - round(c))``, computed below from c alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.preprocess import Transform, resize
from edgepose.core.schemas import get_schema
from edgepose.decoders import OutputTensor, get_decoder

SIZE = 64  # heatmap height and width
INPUT = (256, 256)  # model input (h, w): 4 input pixels per heatmap pixel


def gaussians(centers: np.ndarray, sigma: float, amplitude: float = 1.0,
              size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """(h, w, K) heatmaps, channel k a Gaussian at centers[k] = (x, y)."""
    ys, xs = np.mgrid[: size[0], : size[1]]
    d2 = (xs[..., None] - centers[:, 0]) ** 2 + (ys[..., None] - centers[:, 1]) ** 2
    return (amplitude * np.exp(-d2 / (2 * sigma**2))).astype(np.float32)


def rule(centers: np.ndarray) -> np.ndarray:
    peak = np.round(centers)
    return peak + 0.25 * np.sign(centers - peak)


def as_output(heat: np.ndarray) -> OutputTensor:
    return OutputTensor(heat[None])


def random_centers(k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(3, SIZE - 4, (k, 2))


@pytest.mark.parametrize("schema", ["coco17", "mpii16"])
@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_quarter_offset_rule(schema: str, sigma: float, seed: int) -> None:
    k = get_schema(schema).num_keypoints
    centers = random_centers(k, seed)
    poses = get_decoder("heatmap")([as_output(gaussians(centers, sigma))],
                                   Transform.identity(*INPUT), schema=schema)
    assert len(poses) == 1 and poses.schema == schema
    got = poses.xy[0] * (SIZE / INPUT[1])  # back to heatmap pixels
    assert np.abs(got - rule(centers)).max() <= 1e-4
    assert np.abs(got - centers).max() <= 0.25  # the rule's worst case
    peaks = gaussians(centers, sigma).max(axis=(0, 1))
    np.testing.assert_allclose(poses.scores[0], peaks, atol=1e-6)


def test_heatmap_to_input_and_source_mapping() -> None:
    """x_in = x_hm * W_in / w and y_in = y_hm * H_in / h, then the resize transform."""
    centers = np.array([[10.0, 20.0], [30.5, 5.25]] + [[40.0, 40.0]] * 15)
    heat = gaussians(centers, 1.5, size=(64, 48))  # input 256 x 192: 4 px per cell
    frame = np.zeros((480, 640, 3), np.uint8)
    _, transform = resize(frame, (256, 192), mode="letterbox")
    poses = get_decoder("heatmap")([as_output(heat)], transform)
    expected_input = rule(centers) * 4.0
    np.testing.assert_allclose(transform.to_model(poses.xy[0]), expected_input, atol=1e-3)
    # Letterbox of 640x480 into 192x256: scale 0.3, 144 rows starting 56 px down.
    np.testing.assert_allclose(poses.xy[0, 0], [40 / 0.3, (80 - 56) / 0.3], atol=1e-3)


def test_multi_output_hourglass_uses_last_stack() -> None:
    first, last = random_centers(16, 2), random_centers(16, 3)
    outputs = [as_output(gaussians(first, 1.5)), as_output(gaussians(last, 1.5)),
               OutputTensor(np.zeros((1, 1, 16, 3), np.float32))]  # unrelated tail output
    poses = get_decoder("heatmap")(outputs, Transform.identity(*INPUT), schema="mpii16")
    got = poses.xy[0] * (SIZE / INPUT[1])
    np.testing.assert_allclose(got, rule(last), atol=1e-4)


@pytest.mark.parametrize("schema", ["coco17", "mpii16"])
def test_flip_test_recovers_position(schema: str) -> None:
    """The flipped pass's heatmaps are the mirror image, with left/right swapped."""
    info = get_schema(schema)
    centers = random_centers(info.num_keypoints, 4)
    normal = gaussians(centers, 2.0)
    swap = info.flip_index()
    t = Transform.identity(*INPUT)
    decode = get_decoder("heatmap")
    # Plain mirror (no pixel shift): flipped channel k shows keypoint swap[k] at w-1-x.
    mirrored = gaussians(np.c_[SIZE - 1 - centers[swap, 0], centers[swap, 1]], 2.0, amplitude=0.6)
    poses = decode([as_output(normal)], t, schema=schema, flipped=[as_output(mirrored)],
                   flip_shift=False)
    np.testing.assert_allclose(poses.xy[0] * (SIZE / INPUT[1]), rule(centers), atol=1e-4)
    # Both passes are averaged: peak height (1.0 + 0.6) / 2 where the centre is on a cell.
    on_cell = np.all(centers == np.round(centers), axis=1)
    expected = (gaussians(centers, 2.0) + gaussians(centers, 2.0, 0.6)).max(axis=(0, 1)) / 2
    np.testing.assert_allclose(poses.scores[0][~on_cell], expected[~on_cell], atol=0.02)
    # Simple Baselines' flip: mirrored pixel grid is one pixel off (keypoint at w - x),
    # which flip_shift undoes.
    shifted = gaussians(np.c_[SIZE - centers[swap, 0], centers[swap, 1]], 2.0)
    poses = decode([as_output(normal)], t, schema=schema, flipped=[as_output(shifted)])
    np.testing.assert_allclose(poses.xy[0] * (SIZE / INPUT[1]), rule(centers), atol=1e-4)
    # Without swapping left/right, the shifted pass would pull keypoints to the wrong side.
    unswapped = gaussians(np.c_[SIZE - centers[:, 0], centers[:, 1]], 2.0, amplitude=1.5)
    wrong = decode([as_output(normal)], t, schema=schema, flipped=[as_output(unswapped)])
    assert np.abs(wrong.xy[0] * (SIZE / INPUT[1]) - rule(centers)).max() > 1.0


def test_scores_are_clipped_to_one() -> None:
    centers = random_centers(17, 5)
    poses = get_decoder("heatmap")([as_output(gaussians(centers, 1.0, amplitude=1.3))],
                                   Transform.identity(*INPUT))
    assert poses.scores.max() == 1.0 and poses.pose_scores[0] == pytest.approx(
        poses.scores[0].mean())


def _heat(k: int, h: int = SIZE, w: int = SIZE) -> list[OutputTensor]:
    return [as_output(np.zeros((h, w, k), np.float32))]


@pytest.mark.parametrize("outputs,params,error,expected", [
    (_heat(17), {"schema": "mpii16"}, ModelError, r"heatmaps \[1,h,w,16\] for schema 'mpii16'"),
    (_heat(16), {"schema": "coco17"}, ModelError, r"heatmaps \[1,h,w,17\] for schema 'coco17'"),
    (_heat(16), {}, ModelError, "coco17"),
    ([], {}, ModelError, "outputs none don't fit decoder 'heatmap'"),
    ([OutputTensor(np.zeros((1, 17, 64, 64)))], {}, ModelError, "channels-first"),
    (_heat(17), {"flipped": _heat(16)}, ModelError, "flipped outputs"),
    (_heat(17), {"flipped": _heat(17, 32, 32)}, ModelError, "same shape"),
    (_heat(17), {"schema": "body25"}, ConfigError, "unknown schema 'body25'"),
    (_heat(17, 0, 64), {}, ModelError, r"heatmaps \[1,h,w,17\]"),
    (_heat(17, 64, 0), {}, ModelError, r"heatmaps \[1,h,w,17\]"),
    ([OutputTensor(np.zeros((1, 17, 64)))], {}, ModelError, r"for schema 'coco17'; pick"),  # no channels-first hint
    (_heat(17), {"flip": True}, ConfigError, "no parameter 'flip'"),
])
def test_bad_outputs_and_params(outputs: list[OutputTensor], params: dict, error: type,
                                expected: str) -> None:
    with pytest.raises(error, match=expected) as info:
        get_decoder("heatmap")(outputs, Transform.identity(*INPUT), **params)
    assert "\n" not in str(info.value)


# (peak x, peak y, the neighbour given 0.5: dx, dy) -> the quarter step expected on (x, y)
EDGE_CASES = [
    ((0, 5), (1, 0), (0.0, 0.0)),             # left edge: no step even toward a higher neighbour
    ((SIZE - 1, 5), (-1, 0), (0.0, 0.0)),     # right edge
    ((5, 0), (0, 1), (0.0, 0.0)),             # top edge
    ((5, SIZE - 1), (0, -1), (0.0, 0.0)),     # bottom edge
    ((1, 5), (-1, 0), (-0.25, 0.0)),          # one in from the left: the step toward column 0
    ((SIZE - 2, 5), (1, 0), (0.25, 0.0)),     # one in from the right: toward the last column
    ((5, 1), (0, -1), (0.0, -0.25)),          # one in from the top
    ((5, SIZE - 2), (0, 1), (0.0, 0.25)),     # one in from the bottom
]


def test_the_quarter_step_at_and_next_to_the_edges() -> None:
    """Peaks on the border take no step (there is no neighbour on one side); one cell in,
    they step toward the border neighbour when it is the higher one."""
    heat = np.zeros((SIZE, SIZE, 17), np.float32)
    heat[..., len(EDGE_CASES):] = gaussians(np.full((17 - len(EDGE_CASES), 2), 30.0), 2.0)
    expected = []
    for k, ((x, y), (dx, dy), step) in enumerate(EDGE_CASES):
        heat[y, x, k] = 1.0
        heat[y + dy, x + dx, k] = 0.5
        expected.append((x + step[0], y + step[1]))
    poses = get_decoder("heatmap")([as_output(heat)], Transform.identity(SIZE, SIZE))
    np.testing.assert_allclose(poses.xy[0, : len(EDGE_CASES)], np.array(expected), atol=1e-6)


def test_negative_peaks_score_zero() -> None:
    """A heatmap that is negative everywhere (a float model's logits) scores 0, not below."""
    heat = gaussians(random_centers(17, 2), 2.0) - 2.0
    poses = get_decoder("heatmap")([as_output(heat)], Transform.identity(*INPUT))
    assert (poses.scores == 0).all() and poses.pose_scores[0] == 0


def test_a_one_cell_heatmap_decodes_to_its_only_cell() -> None:
    poses = get_decoder("heatmap")([as_output(np.full((1, 1, 17), 0.7, np.float32))], Transform.identity(4, 4))
    np.testing.assert_allclose(poses.xy[0], 0.0)
    np.testing.assert_allclose(poses.scores[0], 0.7, rtol=1e-6)


def test_a_transform_without_a_model_size_is_refused() -> None:
    for size in ((0, 64), (64, 0)):
        with pytest.raises(ConfigError, match="Transform without model_size"):
            get_decoder("heatmap")([as_output(gaussians(random_centers(17, 0), 2.0))],
                                   Transform(1, 1, 0, 0, (64, 64), size))


def test_one_in_from_the_far_edges_the_step_reads_both_neighbours() -> None:
    """Peak one cell in from the right (bottom) edge, its inner neighbour higher than the
    edge cell: the step goes inward, -0.25."""
    heat = gaussians(np.full((17, 2), 30.0), 2.0)
    heat[..., :2] = 0.0
    heat[5, SIZE - 2, 0], heat[5, SIZE - 3, 0], heat[5, SIZE - 1, 0] = 1.0, 0.5, 0.2
    heat[SIZE - 2, 5, 1], heat[SIZE - 3, 5, 1], heat[SIZE - 1, 5, 1] = 1.0, 0.5, 0.2
    poses = get_decoder("heatmap")([as_output(heat)], Transform.identity(SIZE, SIZE))
    np.testing.assert_allclose(poses.xy[0, :2], [[SIZE - 2.25, 5], [5, SIZE - 2.25]], atol=1e-6)
