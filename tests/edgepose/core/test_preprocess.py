from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.errors import ModelError
from edgepose.core.preprocess import Transform, resize, to_input_tensor


def _frame(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["letterbox", "stretch", "crop"])
@pytest.mark.parametrize("src", [(480, 640), (720, 1280), (300, 200), (192, 192)])
def test_transform_round_trips_source_points(mode: str, src: tuple[int, int]) -> None:
    img = _frame(*src)
    out, t = resize(img, (192, 256), mode)  # type: ignore[arg-type]
    assert out.shape == (192, 256, 3)
    pts = np.array([[0, 0], [src[1] - 1, src[0] - 1], [src[1] / 3, src[0] / 2]], np.float32)
    np.testing.assert_allclose(t.to_source(t.to_model(pts)), pts, atol=1e-3)


def test_letterbox_keeps_aspect_and_pads_symmetrically() -> None:
    img = np.full((480, 640, 3), 200, np.uint8)
    out, t = resize(img, (192, 192), "letterbox")
    assert t.scale_x == pytest.approx(t.scale_y, rel=1e-6)
    assert t.offset_x == 0 and t.offset_y == 24  # 640x480 -> 192x144, 24 px bands
    assert (out[:24] == 0).all() and (out[-24:] == 0).all() and (out[24:168] == 200).all()
    # the image's corners land at the content's corners
    np.testing.assert_allclose(t.to_model([[640, 480]]), [[192, 168]], atol=1e-4)


def test_crop_cuts_the_centre() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 50:150] = 255  # the centre square
    out, t = resize(img, (100, 100), "crop")
    assert (out == 255).all()
    assert t.offset_x == -50 and t.offset_y == 0
    np.testing.assert_allclose(t.to_source([[0, 0]]), [[50, 0]])


def test_identity() -> None:
    t = Transform.identity(10, 20)
    np.testing.assert_allclose(t.to_source([[3.5, 4.0]]), [[3.5, 4.0]])


def test_input_tensor_dtypes() -> None:
    img = np.array([[[0, 128, 255]]], np.uint8)
    assert to_input_tensor(img, np.uint8).tolist() == [[[[0, 128, 255]]]]
    assert to_input_tensor(img, np.int8).tolist() == [[[[-128, 0, 127]]]]
    f = to_input_tensor(img, np.float32, mean=127.5, std=127.5)
    np.testing.assert_allclose(f, [[[[-1.0, 0.00392, 1.0]]]], atol=1e-4)
    # quantized input with mean/std: value quantized with the input's own parameters
    q = to_input_tensor(img, np.int8, (1 / 127.5, 0), mean=127.5, std=127.5)
    assert q.tolist() == [[[[-127, 0, 127]]]]


@pytest.mark.parametrize("dtype, quant, mean, std", [
    (np.uint8, (0.0, 0), None, None),            # raw pixels
    (np.int8, (0.0, 0), None, None),
    (np.float32, (0.0, 0), (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)),  # BGR-order ImageNet
    (np.uint8, (0.0171, 117), (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)),
])
def test_bgr_manifest_feeds_channels_reversed(dtype: type, quant: tuple[float, int], mean: object,
                                              std: object) -> None:
    """channels = "bgr" (from the manifest) feeds what an OpenCV-trained model saw: the RGB
    frame's channels reversed, normalised with mean/std given in BGR order."""
    img = _frame(5, 7)
    bgr = to_input_tensor(img, dtype, quant, mean, std, channels="bgr")  # type: ignore[arg-type]
    rgb_of_reversed = to_input_tensor(np.ascontiguousarray(img[..., ::-1]), dtype, quant, mean, std)  # type: ignore[arg-type]
    assert bgr.dtype == np.dtype(dtype) and bgr.shape == (1, 5, 7, 3)
    np.testing.assert_array_equal(bgr, rgb_of_reversed)
    assert not np.array_equal(bgr, to_input_tensor(img, dtype, quant, mean, std))  # type: ignore[arg-type]


def test_manifest_channels_field() -> None:
    from edgepose.models.manifest import manifest_from_dict

    base = {"name": "m", "file": "m.tflite", "input_size": [8, 8], "decoder": "heatmap", "schema": "coco17"}
    assert manifest_from_dict(base).channels == "rgb"
    m = manifest_from_dict({**base, "channels": "bgr"})
    assert m.channels == "bgr" and m.to_dict()["channels"] == "bgr"
    with pytest.raises(ModelError, match="channels = 'gbr'; expected one of rgb, bgr"):
        manifest_from_dict({**base, "channels": "gbr"})


def test_bad_frame_and_mode() -> None:
    with pytest.raises(ModelError, match="RGB frame"):
        resize(np.zeros((4, 4), np.uint8), (2, 2))
    with pytest.raises(ModelError, match="resize mode"):
        resize(np.zeros((4, 4, 3), np.uint8), (2, 2), "zoom")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="quantization"):
        to_input_tensor(np.zeros((1, 1, 3), np.uint8), np.uint8, (0.0, 0), mean=0.0, std=1.0)


def test_a_crop_then_a_resize_is_one_transform() -> None:
    """Crop 100..300 x 50..250 of a 480x640 frame, letterbox it to 192x192: model pixels
    map straight back to the frame through the composed transform."""
    crop = Transform.for_crop(100, 50, 300, 250, (200, 200), (480, 640))
    _, resized = resize(np.zeros((200, 200, 3), np.uint8), (192, 192), "letterbox")
    t = crop.then(resized)
    assert t.source_size == (480, 640) and t.model_size == (192, 192)
    np.testing.assert_allclose(t.to_source([[0, 0], [192, 192], [96, 48]]),
                               [[100, 50], [300, 250], [200, 100]], atol=1e-4)
    pts = np.array([[123.0, 77.0], [290.0, 240.0]], np.float32)
    np.testing.assert_allclose(t.to_source(t.to_model(pts)), pts, atol=1e-4)


def test_an_empty_crop_region_is_refused() -> None:
    with pytest.raises(ModelError, match="is empty"):
        Transform.for_crop(10, 10, 10, 20, (8, 8))
