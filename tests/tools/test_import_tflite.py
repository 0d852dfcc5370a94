"""MediaPipe's float BlazePose landmark model (no signature, float16 weights behind
DEQUANTIZE) rebuilt as a TF graph, quantized to int8 with real images through our int8
path, and checked: what `check` says about the result, op by op."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path

pytestmark = pytest.mark.slow
# Stated bounds, int8 (dequantized) against the original float .tflite on the 8 coco17_dev
# images (not used for calibration), measured with 12 limbs12_dev calibration images:
# heatmaps [1,64,64,39] cosine min 0.989; segmentation logits [1,256,256,1] sign agreement
# min 0.967 of pixels; the 33 landmarks' x, y (of [1,195]) mean error 9.4 px, worst image
# 13.0 px, on the 256 px input; world landmarks [1,117] cosine min 0.865. Landmarks lose the
# most (plain post-training quantization of BlazePose; 48 video frames did not do better).
MIN_HEATMAP_COSINE = 0.98
MIN_MASK_AGREEMENT = 0.95
MAX_LANDMARK_ERROR_PX = 16.0
MIN_WORLD_COSINE = 0.8


@pytest.fixture(scope="module")
def landmark(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    from tools import importers
    from tools.quantize import convert_int8, load_representative

    src = shared_path("models", "mediapipe", "pose_landmark_full.tflite")
    imported = importers.load(src)
    # BlazePose takes RGB in 0..1: mean 0, std 255. Calibration: limbs12_dev, 12 real images.
    calib = load_representative(shared_path("data", "limbs12_dev", "images"), 12, imported.input.size,
                                "letterbox", (0.0,), (255.0,), progress=False)
    out = tmp_path_factory.mktemp("tfl") / "pose_landmark_full_int8.tflite"
    out.write_bytes(convert_int8(imported.make_converter(), calib, "uint8", src))
    return src, out, imported


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    d = it.get_input_details()[0]
    scale, zero = d["quantization"]
    feed = x if d["dtype"] == np.float32 else np.clip(np.round(x / scale + zero), 0, 255).astype(d["dtype"])
    it.set_tensor(d["index"], feed)
    it.invoke()
    outs = []
    for o in it.get_output_details():
        v = it.get_tensor(o["index"]).astype(np.float32)
        s, z = o["quantization"]
        outs.append((v - z) * s if s else v)
    return outs


def test_float_tflite_without_signature_imports(landmark) -> None:  # type: ignore[no-untyped-def]
    src, _, imported = landmark
    assert imported.fmt == "tflite" and imported.input.size == (256, 256)
    assert imported.output_names == ("Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4")
    assert "signature: none" in imported.notes[0]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def test_int8_landmarks_agree_with_the_float_model(landmark) -> None:  # type: ignore[no-untyped-def]
    from edgepose.core.imageio import list_images, read_image
    from edgepose.core.preprocess import resize

    src, out, _ = landmark
    err, mask, heat, world = [], [], [], []
    for p in list_images(shared_path("data", "coco17_dev", "images")):
        frame, _ = resize(read_image(p), (256, 256), "letterbox")
        x = (frame.astype(np.float32) / 255.0)[None]
        f, q = _run(src, x), _run(out, x)
        lf, lq = f[0].reshape(39, 5)[:33, :2], q[0].reshape(39, 5)[:33, :2]
        err.append(float(np.linalg.norm(lf - lq, axis=1).mean()))
        mask.append(float(np.mean((f[2] > 0) == (q[2] > 0))))
        heat.append(_cos(f[3], q[3]))
        world.append(_cos(f[4], q[4]))
    print(f"int8 vs float: landmarks {np.mean(err):.1f} px (worst {max(err):.1f}), heatmap cosine min "
          f"{min(heat):.4f}, mask agreement min {min(mask):.3f}, world cosine min {min(world):.3f}")
    assert len(err) == 8
    assert min(heat) >= MIN_HEATMAP_COSINE and min(mask) >= MIN_MASK_AGREEMENT
    assert max(err) <= MAX_LANDMARK_ERROR_PX and min(world) >= MIN_WORLD_COSINE


def test_check_reports_what_keeps_it_off_the_edgetpu(landmark) -> None:  # type: ignore[no-untyped-def]
    from tools import edgetpu_ops
    from tools.check import check_model

    src, out, _ = landmark
    before, after = check_model(src), check_model(out)
    # The float file: one problem saying it is a float model, with the fix (quantize it).
    assert before.status == "split"
    assert {p.kind for p in before.problems} == {"float-model"}
    assert any("edgepose-tools build" in p.message for p in before.problems)
    # The int8 file: every op is one edgetpu_compiler 16 accepts, at a version it accepts
    # (TF's converter; ai-edge-quantizer's CONV_2D v6 would be rejected).
    versions = Counter((op.name, op.version) for op in after.ops)
    print(f"int8 ops: {dict(versions)}; verdict {after.status}; parameters {after.param_bytes / 1024:.0f} KiB")
    for (name, version) in versions:
        assert edgetpu_ops.accepted_version(name) is not None and version <= edgetpu_ops.accepted_version(name)
    # The network is all there: every convolution of the float model, no TRANSPOSE added.
    float_ops = Counter(op.name for op in before.ops)
    assert versions[("CONV_2D", 3)] == float_ops["CONV_2D"]
    assert versions[("DEPTHWISE_CONV_2D", 3)] == float_ops["DEPTHWISE_CONV_2D"]
    assert after.status == "mapped" and not after.problems, after.problems


def _grouped_conv_tflite(path: Path) -> Path:
    """A float .tflite with a grouped convolution (TFLite's CONV_2D v6)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", groups=2, activation="relu")(x)
    out = keras.layers.Conv2D(17, 1)(x)
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out)).convert())
    return path


def test_grouped_conv_v6_is_reported_with_its_fix_and_rewritten_by_the_importer(tmp_path: Path) -> None:
    from tools import importers
    from tools.check import check_model
    from tools.quantize import convert_int8, load_representative

    src = _grouped_conv_tflite(tmp_path / "grouped.tflite")
    assert ("CONV_2D", 6) in {(op.name, op.version) for op in check_model(src).ops}
    imported = importers.load(src)
    calib = load_representative(shared_path("images"), 6, (32, 32), progress=False)
    out = tmp_path / "grouped_int8.tflite"
    out.write_bytes(convert_int8(imported.make_converter(), calib, "uint8", src))
    report = check_model(out)
    versions = Counter((op.name, op.version) for op in report.ops)
    assert versions[("CONV_2D", 3)] == 4 and versions[("CONCATENATION", 2)] + versions[("CONCATENATION", 1)] == 1
    assert report.status == "mapped"
    # The rebuilt float graph computes what the original does.
    x = calib[0]
    np.testing.assert_allclose(_run(src, x)[0], _run_bytes(imported.make_converter().convert(), x)[0],
                               rtol=1e-4, atol=1e-4)
    # TF's own int8 conversion of a grouped Keras conv keeps v6: check names the cause and the fix.
    direct = tmp_path / "direct_int8.tflite"
    direct.write_bytes(_keras_grouped_int8(calib))
    v6 = [p for p in check_model(direct).problems if p.op == "CONV_2D" and p.version == 6]
    assert v6 and "grouped convolution" in v6[0].message and "split it into one CONV_2D per group" in v6[0].message


def _keras_grouped_int8(calib: list[np.ndarray]) -> bytes:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", groups=1)(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", groups=2)(x)
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, x))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.uint8
    return bytes(conv.convert())


def _run_bytes(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return [it.get_tensor(o["index"]) for o in it.get_output_details()]


def test_detector_with_sparse_weights_and_depth_to_space_maps_after_import(tmp_path: Path) -> None:
    """BlazePose's detector stores weights sparse (DENSIFY) and upsamples with DEPTH_TO_SPACE,
    an op the Edge TPU lacks. The import rebuilds it exactly, with each DEPTH_TO_SPACE as the
    TRANSPOSE_CONV (v2) computing the same; the int8 result maps fully and agrees with the
    float original on real images. Measured (6 calibration images): regressors cosine min
    0.915, scores cosine min 0.996 over the 8 coco17_dev images."""
    from edgepose.core.imageio import list_images, read_image
    from edgepose.core.preprocess import resize
    from tools import importers
    from tools.check import check_model
    from tools.quantize import convert_int8, load_representative

    src = shared_path("models", "mediapipe", "pose_detection.tflite")
    imported = importers.load(src)
    x = np.random.default_rng(0).uniform(0.0, 1.0, (1, 224, 224, 3)).astype(np.float32)
    for a, b in zip(_run(src, x), _run_bytes(imported.make_converter().convert(), x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    calib = load_representative(shared_path("data", "limbs12_dev", "images"), 6, (224, 224), "letterbox",
                                (0.0,), (255.0,), progress=False)
    out = tmp_path / "pose_detection_int8.tflite"
    out.write_bytes(convert_int8(imported.make_converter(), calib, "uint8", src))
    before, after = check_model(src), check_model(out)
    d2s = sum(op.name == "DEPTH_TO_SPACE" for op in before.ops)
    versions = Counter((op.name, op.version) for op in after.ops)
    print(f"pose_detection int8: {after.status}; {dict(versions)}")
    assert d2s == 3 and versions[("TRANSPOSE_CONV", 2)] == d2s and not any(n == "DEPTH_TO_SPACE" for n, _ in versions)
    assert after.status == "mapped" and not after.problems, after.problems
    boxes, scores = [], []
    for p in list_images(shared_path("data", "coco17_dev", "images")):
        frame, _ = resize(read_image(p), (224, 224), "letterbox")
        f, q = _run(src, (frame.astype(np.float32) / 255.0)[None]), _run(out, (frame.astype(np.float32) / 255.0)[None])
        boxes.append(_cos(f[0], q[0]))
        scores.append(_cos(f[1], q[1]))
    print(f"pose_detection int8 vs float: regressors cosine min {min(boxes):.3f}, scores min {min(scores):.3f}")
    assert min(boxes) >= 0.85 and min(scores) >= 0.98
