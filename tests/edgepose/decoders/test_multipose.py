"""The MultiPose heads decoder on hand-made heads (each rule of the graph's tail on its own);
the golden test against the real float graph is tests/tools/test_import_tfjs.py."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.preprocess import Transform
from edgepose.decoders import get_decoder
from edgepose.decoders.base import OutputTensor
from edgepose.decoders.multipose import SIGMA_FACTOR, decode_raw

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
