"""MoveNet decoder on the real Lightning int8 model, against Coral's reference CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.preprocess import Transform, resize
from edgepose.decoders import OutputTensor, get_decoder
from tests.conftest import load_rgb, shared_path
from tests.edgepose.conftest import RunModel, pil_resize

MODEL = "movenet_single_pose_lightning_ptq.tflite"
TOL = 0.03  # normalised x and y, every keypoint (the acceptance)


def _reference() -> tuple[np.ndarray, np.ndarray]:
    path = shared_path("models", "coral", "movenet_single_pose_lightning_ptq_reference.csv")
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["keypoint_id"]))
    xy = np.array([[float(r["keypoint_x"]), float(r["keypoint_y"])] for r in rows])
    return xy, np.array([float(r["keypoint_score"]) for r in rows])


def test_matches_coral_reference(run_model: RunModel) -> None:
    # Coral's example resizes with PIL's ANTIALIAS (= LANCZOS): the best match here
    # (max 0.022); PIL/OpenCV bilinear give 0.030, nearest 0.034.
    image = load_rgb(shared_path("images", "coral_squat.bmp"))
    x = pil_resize(image, (192, 192), "lanczos")
    poses = get_decoder("movenet")(run_model(MODEL, x), Transform.identity(192, 192))
    ref_xy, _ = _reference()
    assert len(poses) == 1 and poses.schema == "coco17"
    np.testing.assert_array_less(np.abs(poses.xy[0] / 192 - ref_xy), TOL)
    assert np.all((poses.scores >= 0) & (poses.scores <= 1))
    assert poses.pose_scores[0] == pytest.approx(poses.scores[0].mean())


def test_maps_letterboxed_keypoints_to_source(run_model: RunModel) -> None:
    """Letterbox on a portrait frame: keypoints land where the stretched pass puts them."""
    image = load_rgb(shared_path("images", "coral_squat.bmp"))
    x, transform = resize(image, (192, 192), mode="letterbox", interpolation="bilinear")
    poses = get_decoder("movenet")(run_model(MODEL, x), transform)
    h, w = image.shape[:2]
    ref_xy, _ = _reference()
    # Same person, a different input framing: within 5 % of the frame.
    err = np.abs(poses.xy[0] / [w, h] - ref_xy)
    assert np.median(err) <= 0.02 and err.max() <= 0.05


def _one(shape: tuple[int, ...]) -> list[OutputTensor]:
    return [OutputTensor(np.zeros(shape, np.float32))]


@pytest.mark.parametrize("outputs", [
    pytest.param([], id="no-outputs"),
    pytest.param(_one((1, 1, 17, 2)), id="two-values-per-keypoint"),
    pytest.param(_one((1, 1, 16, 3)), id="16-keypoints"),
    pytest.param(_one((1, 6, 56)), id="multipose-output"),
    pytest.param(_one((1, 9, 11, 17)), id="posenet-heatmap"),
    pytest.param(_one((1, 1, 17, 3)) * 2, id="two-outputs"),
])
def test_bad_outputs_raise_model_error(outputs: list[OutputTensor]) -> None:
    with pytest.raises(ModelError, match="don't fit decoder 'movenet'") as info:
        get_decoder("movenet")(outputs, Transform.identity(192, 192))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("params,transform,expected", [
    ({"schema": "mpii16"}, Transform.identity(192, 192), "schema 'mpii16'"),
    ({"score_threshold": 0.3}, Transform.identity(192, 192), "no parameter 'score_threshold'"),
    ({}, Transform(), "without model_size"),
])
def test_bad_params_raise_config_error(params: dict, transform: Transform, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        get_decoder("movenet")(_one((1, 1, 17, 3)), transform, **params)


@pytest.mark.parametrize("shape", [(1, 1, 17, 3), (1, 17, 3)])
def test_rows_become_pixels_and_clipped_scores(shape: tuple[int, ...]) -> None:
    """Each row (y, x, score), normalised: x * input width, y * input height; the score
    clipped to [0, 1] (a float model's raw column can stray out); pose score = their mean.
    Both layouts MoveNet builds give (with and without the person axis) decode alike."""
    rng = np.random.default_rng(3)
    rows = np.stack([rng.uniform(0, 1, 17), rng.uniform(0, 1, 17), np.linspace(-0.2, 1.2, 17)], axis=-1)
    poses = get_decoder("movenet")([OutputTensor(rows.reshape(shape).astype(np.float32))],
                                   Transform.identity(120, 160))
    assert len(poses) == 1 and poses.schema == "coco17"
    np.testing.assert_allclose(poses.xy[0], np.stack([rows[:, 1] * 160, rows[:, 0] * 120], axis=-1), rtol=1e-5)
    np.testing.assert_allclose(poses.scores[0], np.clip(rows[:, 2], 0, 1), atol=1e-6)
    assert poses.pose_scores[0] == pytest.approx(np.clip(rows[:, 2], 0, 1).mean(), rel=1e-5)


def test_plain_arrays_decode_through_as_outputs() -> None:
    """``as_outputs`` (public): plain arrays become float OutputTensors, OutputTensors pass as they are."""
    from edgepose.decoders import as_outputs

    rows = np.random.default_rng(4).uniform(0, 1, (1, 1, 17, 3)).astype(np.float32)
    quant = OutputTensor(np.zeros((1, 9, 11, 17), np.uint8), 0.5, 3, "heat")
    wrapped = as_outputs([rows, quant])
    assert wrapped[1] is quant and isinstance(wrapped[0], OutputTensor)
    np.testing.assert_array_equal(wrapped[0].dequantize(), rows)
    poses = get_decoder("movenet")(as_outputs([rows]), Transform.identity(10, 10))
    np.testing.assert_allclose(poses.xy[0], rows[0, 0, :, 1::-1] * 10, rtol=1e-5)
