"""The MultiPose heads decoder on hand-made heads (each rule of the graph's tail on its own);
the golden test against the real float graph is tests/tools/test_import_tfjs.py."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.preprocess import Transform, resize
from edgepose.decoders import get_decoder
from edgepose.decoders.base import OutputTensor
from edgepose.decoders.multipose import SIGMA_FACTOR, decode_raw, poses_from_raw

G = 16  # grid; input 64x64 (stride 4)
NAMES = ("centre/Sigmoid", "box_scale_0/BiasAdd", "box_offset_0/BiasAdd", "Sigmoid_1", "kpt_regress_0/BiasAdd",
         "kpt_offset_0/BiasAdd")


def _heads(cy: int = 8, cx: int = 8) -> dict[str, np.ndarray]:
    """One person centred at (cy, cx): box 10 x 6 cells, keypoints regressed to a ring around it,
    each keypoint's heatmap peak one cell right of its regressed spot, offsets (0.3, -0.2)."""
    h = {"centre": np.zeros((G, G, 1)), "scale": np.zeros((G, G, 2)), "boff": np.zeros((G, G, 2)),
         "heat": np.zeros((G, G, 17)), "reg": np.zeros((G, G, 34)), "koff": np.zeros((G, G, 34))}
    h["centre"][cy, cx, 0] = 0.9
    h["centre"][cy, cx + 1, 0] = 0.5  # a neighbour, not a peak
    h["scale"][cy, cx] = (10, 6)
    h["boff"][cy, cx] = (0.25, -0.25)
    angles = np.linspace(0, 2 * np.pi, 17, endpoint=False)
    reg = np.stack([2.0 * np.sin(angles), 1.0 * np.cos(angles)], axis=-1)  # (17, 2), peaks inside the box
    h["reg"][cy, cx] = reg.ravel()
    for k, (dy, dx) in enumerate(reg):
        y, x = int(round(cy + dy)), int(round(cx + dx)) + 1
        h["heat"][y, x, k] = 0.8
        h["koff"][y, x, 2 * k:2 * k + 2] = (0.3, -0.2)
    return h


def _outputs(h: dict[str, np.ndarray]) -> list[OutputTensor]:
    arrays = (h["centre"], h["scale"], h["boff"], h["heat"], h["reg"], h["koff"])
    return [OutputTensor(a[None].astype(np.float32), name=n) for a, n in zip(arrays, NAMES)]


def _expected_keypoints(cy: int = 8, cx: int = 8) -> tuple[np.ndarray, np.ndarray]:
    angles = np.linspace(0, 2 * np.pi, 17, endpoint=False)
    ry, rx = cy + 2.0 * np.sin(angles), cx + 1.0 * np.cos(angles)
    py, px = np.round(ry), np.round(rx) + 1
    score = 0.8 * np.exp(-((py - ry) ** 2 + (px - rx) ** 2) / (SIGMA_FACTOR * G))
    return np.stack([(py + 0.3) / G, (px - 0.2) / G], axis=-1), score


def test_one_person_decodes_to_the_graphs_numbers() -> None:
    raw = decode_raw(_outputs(_heads()))
    assert raw.shape == (6, 56)
    yx, score = _expected_keypoints()
    kp = raw[0, :51].reshape(17, 3)
    np.testing.assert_allclose(kp[:, :2], yx, atol=1e-6)
    np.testing.assert_allclose(kp[:, 2], score, rtol=1e-5)
    # box: centre + offset +- scale / 2, normalised by the grid
    np.testing.assert_allclose(raw[0, 51:55], np.array([8.25 - 5, 7.75 - 3, 8.25 + 5, 7.75 + 3]) / G, atol=1e-6)
    valid = score > 0.126953125
    assert raw[0, 55] == pytest.approx(0.9 * score[valid].mean(), rel=1e-5)
    assert (raw[1:, 55] == 0).all()  # nobody else


def test_decode_maps_to_source_pixels_and_drops_low_poses() -> None:
    decode = get_decoder("multipose")
    t = Transform.identity(64, 64)
    poses = decode(_outputs(_heads()), t)
    assert len(poses) == 1
    yx, _ = _expected_keypoints()
    np.testing.assert_allclose(poses.xy[0], yx[:, ::-1] * 64, atol=1e-4)
    assert len(decode(_outputs(_heads()), t, min_pose_score=0.9)) == 0


def test_a_stronger_peak_outside_the_box_is_not_taken() -> None:
    h = _heads()
    h["heat"][8, 14, 0] = 1.0  # right of the box (x < 7.75 + 3), close in rows: inside, it would win
    h["heat"][8, 10, 0] = 0.0
    raw = decode_raw(_outputs(h))
    assert raw[0, 1] * G < 10.75  # keypoint 0 stays inside the box
    h["scale"][8, 8] = (10, 14)  # widen the box: now it is taken
    assert decode_raw(_outputs(h))[0, 1] * G == pytest.approx(14 - 0.0, abs=0.5)


def test_an_int8_plateau_is_one_person_not_two() -> None:
    h = _heads()
    h["centre"][8, 9, 0] = 0.9 - 1e-7  # a float near-tie (both peaks for the graph), regressing to the same person
    for key in ("scale", "boff", "reg"):
        h[key][8, 9] = h[key][8, 8]
    h["reg"][8, 9, 1::2] -= 1  # seen from one cell to the right
    assert (decode_raw(_outputs(h))[:, 55] > 0.1).sum() == 2  # float: two peaks, as in the graph
    q = _outputs(h)
    q[0] = OutputTensor(np.round(h["centre"][None] * 256).astype(np.uint8), 1 / 256, 0, q[0].name)  # equal in int8
    raw = decode_raw(q)
    assert (raw[:, 55] > 0.1).sum() == 1
    h["centre"][8, 12, 0] = 0.8  # a lower peak 3 cells away is another person, kept
    for key in ("scale", "boff", "reg"):
        h[key][8, 12] = h[key][8, 9]
    h["reg"][8, 12, 1::2] -= 3
    q[0] = OutputTensor(np.round(h["centre"][None] * 256).astype(np.uint8), 1 / 256, 0, q[0].name)
    q[1:] = _outputs(h)[1:]
    assert (decode_raw(q)[:, 55] > 0.1).sum() == 2


@pytest.mark.parametrize("drop, rename, match", [
    (5, None, r"don't fit decoder 'multipose'"),
    (None, ("box_scale_0/BiasAdd", "conv_a"), r"named like the TF Hub graph's nodes"),
])
def test_heads_it_cannot_tell_apart_are_one_error(drop: int | None, rename: tuple[str, str] | None,
                                                  match: str) -> None:
    outs = _outputs(_heads())
    if drop is not None:
        outs = outs[:drop]
    if rename:
        outs = [OutputTensor(o.data, name=rename[1]) if o.name == rename[0] else o for o in outs]
    with pytest.raises(ModelError, match=match) as err:
        decode_raw(outs)
    assert "\n" not in str(err.value)


def test_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no parameter 'nms_radius'"):
        get_decoder("multipose")(_outputs(_heads()), Transform.identity(64, 64), nms_radius=3)


# ---- the vectorised decoder against a plain loop over the docstring's rules -------------

def _naive(h: dict[str, np.ndarray], max_det: int = 6, kthr: float = 0.126953125) -> np.ndarray:
    """The module docstring's five rules, one cell and one person at a time."""
    center = h["centre"][..., 0].astype(np.float64)
    gh, gw = center.shape
    peak = np.zeros_like(center)
    for y in range(gh):
        for x in range(gw):
            if abs(center[y, x] - center[max(0, y - 2):y + 3, max(0, x - 2):x + 3].max()) < 1e-6:
                peak[y, x] = center[y, x]
    order = sorted(range(gh * gw), key=lambda i: (-peak.flat[i], i))[:max_det]
    people = []
    for i in order:
        cy, cx = divmod(i, gw)
        sy, sx = max(h["scale"][cy, cx, 0], 0.0), max(h["scale"][cy, cx, 1], 0.0)
        by, bx = cy + h["boff"][cy, cx, 0], cx + h["boff"][cy, cx, 1]
        box = (min(max(by - sy / 2, 0), gh), min(max(bx - sx / 2, 0), gw),
               min(max(by + sy / 2, 0), gh), min(max(bx + sx / 2, 0), gw))
        reg = [(cy + h["reg"][cy, cx, 2 * k], cx + h["reg"][cy, cx, 2 * k + 1]) for k in range(17)]
        people.append((peak[cy, cx], box, reg))
    denom = SIGMA_FACTOR * min(gh, gw)
    rows = np.zeros((len(people), 56))
    for n, (score, box, reg) in enumerate(people):
        kscores = []
        for k in range(17):
            best, at = 0.0, (0, 0)
            for y in range(gh):
                for x in range(gw):
                    if box[0] <= y < box[2] and box[1] <= x < box[3]:
                        v = h["heat"][y, x, k] * np.exp(-((y - reg[k][0]) ** 2 + (x - reg[k][1]) ** 2) / denom)
                        if v > best:
                            best, at = v, (y, x)
            y, x = at
            s = max([h["heat"][y, x, k] * np.exp(-((y - r[k][0]) ** 2 + (x - r[k][1]) ** 2) / denom)
                     if b[0] <= y < b[2] and b[1] <= x < b[3] else 0.0 for _, b, r in people])
            rows[n, 3 * k:3 * k + 3] = ((y + h["koff"][y, x, 2 * k]) / gh, (x + h["koff"][y, x, 2 * k + 1]) / gw, s)
            kscores.append(s)
        good = [s for s in kscores if s > kthr]
        rows[n, 51:55] = np.clip(np.array(box) / [gh, gw, gh, gw], 0, 1)
        rows[n, 55] = score * (sum(good) / len(good) if good else 0.0)
    return rows


def _random_heads(seed: int, gh: int = 12, gw: int = 16, sparse: bool = False,
                  whole: bool = False) -> dict[str, np.ndarray]:
    """Heads on a grid that is not square, boxes reaching past every edge, negative box
    scales (ReLU'd), keypoint channels that are zero (nothing to snap to)."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 1, (gh, gw, 1))
    if sparse:  # three people: the other top-k picks are the zero cells, lowest index first
        centre = np.zeros((gh, gw, 1))
        for y, x, v in ((2, 3, 0.9), (9, 12, 0.7), (5, 0, 0.4)):
            centre[y, x, 0] = v
    heat = rng.uniform(0, 1, (gh, gw, 17)) ** 3
    heat[..., 5] = 0.0
    h = {"centre": centre, "scale": rng.uniform(-3, 14, (gh, gw, 2)), "boff": rng.uniform(-5, 5, (gh, gw, 2)),
         "heat": heat, "reg": rng.uniform(-7, 7, (gh, gw, 34)), "koff": rng.uniform(-1, 1, (gh, gw, 34))}
    if whole:  # box edges on whole cells: a keypoint cell on a box's far edge is outside it
        for key in ("scale", "boff", "reg"):
            h[key] = np.round(h[key])
    return h


@pytest.mark.parametrize("seed, sparse, whole, max_det, kthr", [
    (0, False, False, 6, 0.126953125), (1, False, False, 6, 0.3), (2, False, False, 3, 0.0),
    (3, True, False, 6, 0.126953125), (4, True, False, 2, 0.5), (5, False, False, 1, 0.126953125),
    (6, False, True, 6, 0.126953125), (8, True, True, 6, 0.2),
])
def test_decode_raw_equals_the_rules_cell_by_cell(seed: int, sparse: bool, whole: bool, max_det: int,
                                                  kthr: float) -> None:
    h = _random_heads(seed, sparse=sparse, whole=whole)
    got = decode_raw(_outputs(h), max_det, kthr)
    want = _naive(h, max_det, kthr)
    assert got.shape == want.shape == (max_det, 56) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_poses_from_raw_in_source_pixels_of_a_wide_frame() -> None:
    """Rows -> Poses: x from the normalised x times the input width, y times its height,
    through the letterbox back to the frame; pose scores at or below the minimum dropped."""
    raw = _naive(_random_heads(11), 3)
    assert (raw[:, 55] > 0).all()
    frame = np.zeros((90, 320, 3), np.uint8)
    _, t = resize(frame, (48, 64), mode="letterbox")
    poses = poses_from_raw(raw, t)
    assert len(poses) == 3 and poses.schema == "coco17"
    k = raw[:, :51].reshape(3, 17, 3)
    np.testing.assert_allclose(poses.xy, t.to_source(np.stack([k[..., 1] * 64, k[..., 0] * 48], axis=-1)),
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(poses.scores, k[..., 2], rtol=1e-6)
    np.testing.assert_allclose(poses.pose_scores, raw[:, 55], rtol=1e-6)
    at = float(np.float32(np.median(raw[:, 55])))
    kept = poses_from_raw(raw, t, min_pose_score=at)
    assert sorted(kept.pose_scores.tolist()) == pytest.approx([float(raw[:, 55].max())])  # above it, not at it
    assert len(poses_from_raw(np.zeros((6, 56)), t)) == 0


def test_decode_passes_its_parameters_to_the_rules() -> None:
    h = _random_heads(12)
    outs, t = _outputs(h), Transform.identity(48, 64)
    got = get_decoder("multipose")(outs, t, max_detections=2, keypoint_threshold=0.2, min_pose_score=0.01)
    want = poses_from_raw(_naive(h, 2, 0.2), t, 0.01)
    assert len(got) == len(want) == 2
    np.testing.assert_allclose(got.pose_scores, want.pose_scores, rtol=1e-4)
    np.testing.assert_allclose(got.xy, want.xy, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dy, dx, people", [(0, 2, 1), (2, 0, 1), (2, 2, 1), (0, 3, 2), (3, 0, 2)])
def test_an_int8_plateau_spans_two_cells_each_way(dy: int, dx: int, people: int) -> None:
    """Two equal int8 centre values: within 2 cells on both axes one person, else two."""
    h = _random_heads(10, sparse=True)
    h["centre"][...] = 0.0
    h["centre"][4, 6, 0] = 0.75
    h["centre"][4 + dy, 6 + dx, 0] = 0.75
    q = _outputs(h)
    q[0] = OutputTensor(np.round(h["centre"][None] * 256).astype(np.uint8), 1 / 256, 0, q[0].name)
    assert (decode_raw(q)[:, 55] > 0).sum() == people
