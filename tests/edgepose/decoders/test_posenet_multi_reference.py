"""The vectorised PoseNet multi-pose decoder against a plain loop over Coral's rules.

``_naive`` is written from the rules of Coral's PosenetDecoderOp (and the module
docstring), one candidate, one edge and one keypoint at a time, on dequantized maps; the
decoder must give the same poses to float precision on random heads with planted people
(quantized and float, people past the edges, ties) and on the real backbone's outputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from edgepose.core.errors import ConfigError
from edgepose.core.preprocess import Transform
from edgepose.decoders import OutputTensor, get_decoder
from edgepose.decoders.posenet import EDGES
from tests.conftest import load_rgb, shared_path
from tests.edgepose.conftest import RunModel, pil_resize

# The decoder keeps points this far (cells) inside the last row/column; Coral clamps at
# exactly h - 1 (the module docstring: an 0.016 px deviation, so bilinear needs no checks).
EPS = 1e-3
DEFAULTS = dict(max_detections=10, score_threshold=0.5, nms_radius=20.0, output_stride=16,
                local_maximum_radius=1, refine_steps=5, coral_edge16=False)
# A person standing, in cells per unit of size (y down, x to the person's left).
SKELETON = np.array([(0, 0), (-0.3, 0.3), (-0.3, -0.3), (-0.1, 0.7), (-0.1, -0.7), (1.2, 1.2),
                     (1.2, -1.2), (2.6, 1.6), (2.6, -1.6), (3.8, 1.8), (3.8, -1.8), (4, 0.8),
                     (4, -0.8), (5.8, 0.9), (5.8, -0.9), (7.6, 1), (7.6, -1)])


def _dequantized(outputs: list[OutputTensor], stride: int) -> tuple[list, list, list]:
    """Heatmap logits, short and mid offsets in cells, as nested lists of floats."""
    by_channels = {o.data.shape[3]: o for o in outputs}
    maps = []
    for c, div in ((17, 1), (34, stride), (64, stride)):
        o = by_channels[c]
        v = o.data[0].astype(np.float64)
        if o.data.dtype.kind != "f" and o.scale:
            v = (v - o.zero_point) * o.scale
        maps.append((v / div).tolist())
    return maps[0], maps[1], maps[2]


def _naive(outputs: list[OutputTensor], **params: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coral's multi-pose rules in plain loops: (n, 17, 2) y/x cells, (n, 17) and (n,) scores."""
    p = {**DEFAULTS, **params}
    stride, thr, local, steps = int(p["output_stride"]), float(p["score_threshold"]), p["local_maximum_radius"], \
        p["refine_steps"]
    heat, short, mid = _dequantized(outputs, stride)
    h, w = len(heat), len(heat[0])
    thr_logit = -math.log(1.0 / (thr + 1e-6) - 1.0)  # Coral's Logodds
    r2 = (float(p["nms_radius"]) / stride) ** 2

    def clamp(y: float, x: float) -> tuple[float, float]:
        return min(max(y, 0.0), h - 1 - EPS), min(max(x, 0.0), w - 1 - EPS)

    def sample(m: list, y: float, x: float, c: int) -> float:
        y0, x0, y1, x1 = math.floor(y), math.floor(x), math.ceil(y), math.ceil(x)
        ty, tx = y - y0, x - x0
        return ((1 - ty) * ((1 - tx) * m[y0][x0][c] + tx * m[y0][x1][c])
                + ty * ((1 - tx) * m[y1][x0][c] + tx * m[y1][x1][c]))

    # 1. Candidates: >= the threshold logit and no cell of the window above (ties count);
    # best first, equal scores the later cell (row-major, then keypoint) first.
    cands = []
    for y in range(h):
        for x in range(w):
            for k in range(17):
                v = heat[y][x][k]
                if v >= thr_logit and all(heat[yy][xx][k] <= v
                                          for yy in range(max(0, y - local), min(h, y + local + 1))
                                          for xx in range(max(0, x - local), min(w, x + local + 1))):
                    cands.append((v, (y * w + x) * 17 + k, y, x, k))
    cands.sort(reverse=True)

    # The tree: (child, mid y channel, mid x channel) from each keypoint.
    adjacent: list[list[tuple[int, int, int]]] = [[] for _ in range(17)]
    for e, (a, b) in enumerate(EDGES):
        adjacent[a].append((b, e, 16 + e))
        adjacent[b].append((a, 16, 32) if e == 0 and p["coral_edge16"] else (a, 32 + e, 48 + e))

    def decode(k: int, y: float, x: float) -> tuple[list, list]:
        pose = {k: (y, x)}
        todo = [k]
        while todo:
            parent = todo.pop()
            for child, cy, cx in adjacent[parent]:
                if child in pose:
                    continue
                py, px = pose[parent]
                y, x = clamp(py + sample(mid, py, px, cy), px + sample(mid, py, px, cx))
                for _ in range(steps):
                    y, x = clamp(y + sample(short, y, x, child), x + sample(short, y, x, 17 + child))
                pose[child] = (y, x)
                todo.append(child)
        points = [pose[j] for j in range(17)]
        scores = [np.float32(1.0 / (1.0 + math.exp(-sample(heat, y, x, j)))) for j, (y, x) in enumerate(points)]
        return points, scores

    def d2(a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2

    # 2.-4. Roots in order: skip one within the radius of the same keypoint of a kept pose.
    poses: list[tuple[list, list, float]] = []
    for _, _, y, x, k in cands:
        if len(poses) == p["max_detections"]:
            break
        root = clamp(y + short[y][x][k], x + short[y][x][17 + k])
        if any(d2(root, q[0][k]) <= r2 for q in poses):
            continue
        points, scores = decode(k, *root)
        if sum(scores) / 17 >= thr:
            poses.append((points, scores, sum(scores) / 17))
    # 5. Soft NMS: keypoints near the same keypoint of a better pose count zero.
    poses.sort(key=lambda q: -q[2])
    out = []
    for i, (points, scores, _) in enumerate(poses):
        free = [s for j, s in enumerate(scores) if all(d2(points[j], q[0][j]) > r2 for q in poses[:i])]
        out.append((points, scores, sum(free) / 17))
    out = [q for q in sorted(out, key=lambda q: -q[2]) if q[2] >= thr]
    return (np.array([q[0] for q in out]).reshape(-1, 17, 2), np.array([q[1] for q in out]).reshape(-1, 17),
            np.array([q[2] for q in out]))


def _decode(outputs: list[OutputTensor], **params: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoder's poses as (n, 17, 2) y/x cells and scores (input pixels / stride)."""
    stride = int(params.get("output_stride", 16))
    h, w = outputs[0].data.shape[1:3]
    poses = get_decoder("posenet_multi")(outputs, Transform.identity(h * stride, w * stride), **params)
    return poses.xy[..., ::-1] / stride, poses.scores, poses.pose_scores


def _assert_same(outputs: list[OutputTensor], **params: Any) -> int:
    want = _naive(outputs, **params)
    got = _decode(outputs, **params)
    assert got[0].shape == want[0].shape, f"{len(got[0])} poses, the rules give {len(want[0])}"
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-5)  # cells (float32 pixels)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[2], want[2], rtol=0, atol=1e-6)
    return len(want[0])


def _plant(maps: tuple[np.ndarray, np.ndarray, np.ndarray], kp: np.ndarray, logits: np.ndarray) -> None:
    """A person with keypoints ``kp`` (17, 2) cells (maybe past the edges): heatmap peaks at
    the nearest cells, short offsets pointing at each keypoint and mid offsets along every
    edge (both ways) around them, so that the walk lands on the keypoints."""
    heat, short, mid = maps
    h, w = heat.shape[:2]
    cells = np.clip(np.round(kp).astype(int), 0, [h - 1, w - 1])
    around = [(slice(max(y - 1, 0), min(y + 2, h)), slice(max(x - 1, 0), min(x + 2, w))) for y, x in cells]
    for k, (ys, xs) in enumerate(around):
        heat[ys, xs, k] = np.maximum(heat[ys, xs, k], logits[k] - 1.5)
        heat[cells[k][0], cells[k][1], k] = logits[k]
        gy, gx = np.mgrid[ys, xs]
        short[ys, xs, k], short[ys, xs, 17 + k] = kp[k, 0] - gy, kp[k, 1] - gx
    for e, (a, b) in enumerate(EDGES):
        for (ys, xs), ch, d in ((around[a], e, kp[b] - kp[a]), (around[b], 32 + e, kp[a] - kp[b])):
            mid[ys, xs, ch], mid[ys, xs, 16 + ch] = d


def _tensors(maps: tuple[np.ndarray, ...], stride: int, quantized: bool) -> list[OutputTensor]:
    """Offsets to input pixels; uint8 with each map's own scale and zero point, or float32."""
    out = []
    for a, name in zip((maps[0], maps[2] * stride, maps[1] * stride), ("heat", "mid", "short")):
        if not quantized:
            out.append(OutputTensor(a[None].astype(np.float32), name=name))
            continue
        scale = float(a.max() - a.min()) / 255
        zero = int(round(-a.min() / scale))
        raw = np.clip(np.round(a / scale + zero), 0, 255).astype(np.uint8)
        out.append(OutputTensor(raw[None], scale, zero, name))
    return out


def _random_heads(seed: int, people: int, quantized: bool = True, stride: int = 16, corner: bool = False,
                  root: int | None = None, h: int = 31, w: int = 41) -> list[OutputTensor]:
    """Noise plus ``people`` planted people (some past the edges, one twice for ties);
    ``root``: that keypoint is each person's best (so it roots the pose)."""
    rng = np.random.default_rng(seed)
    maps = (rng.normal(-5, 2, (h, w, 17)), rng.normal(0, 1, (h, w, 34)), rng.normal(0, 4, (h, w, 64)))
    for i in range(people):
        size = rng.uniform(0.8, 2.5)
        origin = rng.uniform([-4.0, -4.0], [h, w + 3.0])
        kp = origin + SKELETON * size * [1, rng.choice([-1, 1])] + rng.normal(0, 0.3, (17, 2))
        logits = rng.uniform(-1, 5, 17)
        if root is not None:
            logits[root] = 6.0
        _plant(maps, kp, logits)
        if i == 0:  # the same person again, shifted: tied scores
            _plant(maps, kp + [1, 9], logits)
    if corner:  # a person all in one spot past the top-left corner: clamped onto (0, 0)
        _plant(maps, np.full((17, 2), -5.0), np.full(17, 6.0))
    return _tensors(maps, stride, quantized)


@pytest.mark.parametrize("seed, people, quantized, corner, params", [
    (0, 4, True, False, {}),
    (1, 6, True, False, dict(max_detections=20, score_threshold=0.2, nms_radius=10)),
    (2, 5, False, False, dict(score_threshold=0.3, nms_radius=24)),
    (3, 3, True, True, dict(score_threshold=0.25, nms_radius=0)),
    (4, 3, False, True, dict(score_threshold=0.25, nms_radius=0, refine_steps=1)),
    (5, 5, True, False, dict(max_detections=1, score_threshold=0.2)),
    (6, 4, True, False, dict(local_maximum_radius=2, refine_steps=2, score_threshold=0.3)),
    (7, 4, True, False, dict(coral_edge16=True, score_threshold=0.3)),
    (8, 8, True, False, dict(refine_steps=0, score_threshold=0.15, max_detections=20, nms_radius=32)),
    (9, 2, False, False, dict(local_maximum_radius=0, score_threshold=0.4)),
    (10, 6, True, False, dict(max_detections=3, score_threshold=0.3, output_stride=8)),
    (11, 5, True, False, dict(score_threshold=0.6, nms_radius=40)),
])
def test_decoder_equals_the_rules_on_random_heads(seed: int, people: int, quantized: bool, corner: bool,
                                                  params: dict) -> None:
    stride = params.get("output_stride", 16)
    n = _assert_same(_random_heads(seed, people, quantized, stride, corner), **params)
    max_det = params.get("max_detections", 10)
    assert min(2, max_det) <= n <= max_det


def test_random_heads_exercise_the_rules() -> None:
    """The heads above are not trivial: uint8 ties everywhere, a pose clamped onto the
    corner (its 16 other roots suppressed at radius 0), keypoints clamped onto the edges,
    poses rescored by soft NMS."""
    outputs = _random_heads(3, 3, corner=True)
    xy, _, _ = _naive(outputs, score_threshold=0.25, nms_radius=0)
    heat = outputs[0].data[0]
    assert len(np.unique(heat)) < heat.size / 50
    assert (xy[0] == 0).all() and not (xy[1:] == 0).all(axis=(1, 2)).any()
    xy, scores, pose_scores = _naive(_random_heads(11, 5), score_threshold=0.6, nms_radius=40)
    assert (xy[..., 1] == 41 - 1 - EPS).any() and (xy[..., 0] == 0).any()
    assert (pose_scores < scores.mean(axis=1) - 1e-3).any()


@pytest.mark.parametrize("params", [
    {},
    dict(max_detections=20, score_threshold=0.2, nms_radius=10),  # Coral's options
    dict(score_threshold=0.1, nms_radius=1, coral_edge16=True),
    dict(max_detections=1, refine_steps=2, local_maximum_radius=2, score_threshold=0.15),
    dict(max_detections=4, score_threshold=0.15, nms_radius=60),
])
def test_decoder_equals_the_rules_on_the_real_backbone(run_model: RunModel, params: dict) -> None:
    """PoseNet 481x641 (a 31 x 41 grid) on the couple photo, resized like Coral's tests."""
    image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
    outputs = run_model("posenet_mobilenet_v1_075_481_641_quant.tflite", pil_resize(image, (481, 641), "nearest"))
    assert outputs[0].data.shape[1:3] == (31, 41)
    assert _assert_same(outputs, **params) >= 1


def _exact_threshold(logit: float) -> float | None:
    """A score_threshold whose Coral Logodds is exactly ``logit`` (None if float64 has none)."""
    thr = 1 / (1 + math.exp(-logit)) - 1e-6
    for _ in range(100):
        got = -math.log(1.0 / (thr + 1e-6) - 1.0)
        if got == logit:
            return thr
        thr = math.nextafter(thr, 1.0 if got < logit else 0.0)
    return None


def _one_person(nose: float, others: float, shift: int = 0) -> tuple[np.ndarray, ...]:
    """A person planted on whole cells, nose logit ``nose``, the rest ``others``; a
    second, equal one ``shift`` cells to the right (if nonzero)."""
    maps = (np.full((31, 41, 17), -6.0), np.zeros((31, 41, 34)), np.zeros((31, 41, 64)))
    kp = np.round(SKELETON * 2) + [8, 10]
    logits = np.full(17, others)
    logits[0] = nose
    _plant(maps, kp, logits)
    if shift:
        _plant(maps, kp + [0, shift], logits)
    return maps


def test_a_float_root_exactly_at_the_threshold_is_a_candidate() -> None:
    """Coral keeps a candidate whose logit equals Logodds(score_threshold) (>=). The other
    keypoints sit one float32 step below it: no candidates, but scores above the threshold."""
    logit = next(m / 8 for m in range(4, 40) if _exact_threshold(m / 8) is not None)
    thr = _exact_threshold(logit)
    below = float(np.nextafter(np.float32(logit), np.float32(0)))
    assert _assert_same(_tensors(_one_person(logit, below), 16, False), score_threshold=thr) == 1
    assert _assert_same(_tensors(_one_person(below, below), 16, False), score_threshold=thr) == 0


def test_a_uint8_peak_of_255_exactly_at_the_threshold_is_a_candidate() -> None:
    """The highest raw value at exactly the threshold still counts; a hair above, nothing does."""
    zero = next(z for z in range(254, 100, -1) if _exact_threshold((255 - z) / 8) is not None)
    thr = _exact_threshold((255 - zero) / 8)
    maps = _one_person((255 - zero) / 8, (255 - zero) / 8)
    heat = np.clip(np.round(maps[0] * 8) + zero, 0, 255).astype(np.uint8)
    assert (heat == 255).sum() == 17
    outputs = [OutputTensor(heat[None], 1 / 8, zero, "heat"), *_tensors(maps, 16, False)[1:]]
    assert _assert_same(outputs, score_threshold=thr) == 1
    assert len(_decode(outputs, score_threshold=thr + 1e-9)[2]) == 0
    heat[...] = 255  # a threshold above the uint8 range: no candidates at all
    assert len(_decode(outputs, score_threshold=thr + 1e-9)[2]) == 0


def test_a_pose_scoring_exactly_the_threshold_is_kept() -> None:
    """Two equal people: both kept when the threshold equals their score, none one float32
    step above it (first pass and rescoring both compare with >=)."""
    outputs = _tensors(_one_person(3.0, 0.5, shift=12), 16, False)
    _, _, pose_scores = _decode(outputs, score_threshold=0.3)
    assert len(pose_scores) == 2 and pose_scores[0] == pose_scores[1]
    s = float(pose_scores[0])
    assert len(_decode(outputs, score_threshold=s)[2]) == 2
    assert len(_decode(outputs, score_threshold=float(np.nextafter(np.float32(s), np.float32(1))))[2]) == 0
    one = _tensors(_one_person(3.0, 0.5), 16, False)
    assert len(_decode(one, score_threshold=s)[2]) == 1
    assert len(_decode(one, score_threshold=float(np.nextafter(np.float32(s), np.float32(1))))[2]) == 0


@pytest.mark.parametrize("radius, poses", [(48.0, 1), (47.9, 2)])
def test_a_root_exactly_nms_radius_away_is_suppressed(radius: float, poses: int) -> None:
    """The second person 3 cells (48 px) to the right: its root is suppressed at
    nms_radius 48 (<=), not at 47.9."""
    outputs = _tensors(_one_person(3.0, 2.0, shift=3), 16, False)
    assert _assert_same(outputs, nms_radius=radius, score_threshold=0.3) == poses


@pytest.mark.parametrize("radius, first, second", [
    (64.0, (3.0, 3.0), (2.5, 2.5)), (63.9, (3.0, 3.0), (2.5, 2.5)),
    (64.0, (6.0, 1.0), (5.0, 3.0)),  # the second root scores the better pose: it goes first
])
def test_keypoints_exactly_nms_radius_away_are_rescored(radius: float, first: tuple, second: tuple) -> None:
    """Two people 5 cells apart but their ankles 4 (64 px): soft NMS zeroes the keypoints
    within the radius (<=) of a better-scoring pose's, whichever root came first."""
    maps = (np.full((31, 41, 17), -6.0), np.zeros((31, 41, 34)), np.zeros((31, 41, 64)))
    kp = np.round(SKELETON * 2) + [8, 10]
    _plant(maps, kp, np.array([first[0]] + [first[1]] * 16))
    other = kp + [0, 5]
    other[15:] -= [0, 1]
    _plant(maps, other, np.array([second[0]] + [second[1]] * 16))
    outputs = _tensors(maps, 16, False)
    assert _assert_same(outputs, nms_radius=radius, score_threshold=0.3) == 2
    xy, scores, pose_scores = _decode(outputs, nms_radius=radius, score_threshold=0.3)
    covered = scores[1, 15:].sum() / 17 if radius == 64.0 else 0.0
    assert pose_scores[1] == pytest.approx(scores[1].mean() - covered, abs=1e-6)
    assert xy[0, 0, 1] == (10 if first[1] > second[1] else 15)


def test_coral_edge16_reads_left_eye_to_nose_from_channels_16_and_32() -> None:
    """Poses rooted at the left eye walk to the nose on edge 16; without refinement the
    quirk's channels show."""
    outputs = _random_heads(7, 4, root=1)
    params = dict(refine_steps=0, score_threshold=0.3)
    assert _assert_same(outputs, coral_edge16=True, **params) >= 2
    assert _assert_same(outputs, coral_edge16=False, **params) >= 2
    quirk, plain = _decode(outputs, coral_edge16=True, **params)[0], _decode(outputs, **params)[0]
    assert quirk.shape != plain.shape or not np.allclose(quirk[:, 0], plain[:, 0], atol=0.1)


def test_the_defaults_are_10_poses_and_20_px() -> None:
    """Enough people that 11 first-pass poses would give 9 after rescoring, not 8; and a
    root 1.28 cells (20.5 px) from a pose's same keypoint, which 21 px would suppress."""
    outputs = _random_heads(12, 18)
    assert _assert_same(outputs) == 8 < len(_decode(outputs, max_detections=11)[2])
    heat, short, mid = np.full((31, 41, 17), -6.0), np.zeros((31, 41, 34)), np.zeros((31, 41, 64))
    heat[10, 10], heat[10, 10, 0] = 4.0, 5.0  # a pose all at (10, 10)
    heat[10, 13, 0], short[10, 13, 17] = 4.5, -1.72  # a nose rooted at (10, 11.28)
    heat[10, 11:13, 1:] = 3.0  # its other keypoints; and candidates at (10, 12)
    outputs = _tensors((heat, short, mid), 16, False)
    assert _assert_same(outputs) == 2
    assert _decode(outputs)[0][1, 0, 1] == pytest.approx(11.28)
    assert _decode(outputs, nms_radius=21)[0][1, 0, 1] == pytest.approx(12)


def test_equal_poses_keep_their_root_order() -> None:
    """20 people of one point each, all scoring the same: the order stays the candidates'
    (later cell first) through both sorts by pose score (stable sorts)."""
    heat = np.full((31, 41, 17), -6.0)
    for i in range(20):
        heat[2 + 6 * (i // 5), 3 + 8 * (i % 5)] = 3.0
    outputs = _tensors((heat, np.zeros((31, 41, 34)), np.zeros((31, 41, 64))), 16, False)
    assert _assert_same(outputs, max_detections=20) == 20


def test_a_schema_other_than_coco17_is_refused() -> None:
    with pytest.raises(ConfigError, match="decoder 'posenet_multi' produces coco17 keypoints, not schema 'mpii16'"):
        _decode(_tensors(_one_person(3.0, 1.0), 16, False), schema="mpii16")
