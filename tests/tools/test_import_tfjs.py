"""The TF.js importer on the five real TF.js graph models in ../shared/models/tfjs, and on a
small TF.js model written here that uses the fused ops and weight encodings those five do not
(uint8-quantized weights, Prelu, LeakyRelu, FusedBatchNorm, _FusedMatMul)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepose.core.errors import ModelError
from edgepose.core.imageio import read_image
from edgepose.core.preprocess import resize
from edgepose.decoders.base import OutputTensor
from edgepose.decoders.multipose import decode_raw
from tests.conftest import shared_path

P = "StatefulPartitionedCall/"
MULTIPOSE_HEADS = [P + "Sigmoid", P + "box_scale_0/conv2d_5/BiasAdd", P + "box_offset_0/conv2d_6/BiasAdd",
                   P + "Sigmoid_1", P + "kpt_regress_0/conv2d_8/BiasAdd", P + "kpt_offset_0/conv2d_9/BiasAdd"]
CENTERNET_HEADS = ["tower_0/keypoints", "tower_0/wh"]
DARK = "data/limbs12_dev/images/exlpose__imgs_0212_hwangridan_vid000020_exp1200_dark_000052__gain_3.40_exposure_417.png"


def _tfjs(name: str) -> Path:
    return shared_path("models", "tfjs", name)


def _image(name: str, size: tuple[int, int]) -> np.ndarray:
    resized, _ = resize(read_image(shared_path(*(name.split("/") if "/" in name else ("images", name)))), size,
                        "letterbox")
    return resized[None].astype(np.float32)


def _run(imported: Any, x: np.ndarray) -> list[np.ndarray]:
    """The imported graph itself (TensorFlow, no TFLite), on one float batch."""
    import tensorflow as tf

    out = imported.keepalive[1](tf.constant(x))
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


@pytest.fixture(scope="session")
def imports() -> dict[str, Any]:
    """Each real model imported once (full graphs; MultiPose also cut at heads + its output)."""
    from tools import importers

    cache: dict[str, Any] = {}

    def get(key: str) -> Any:
        if key not in cache:
            if key == "multipose-heads":
                cache[key] = importers.load(_tfjs("movenet-multipose"), outputs=[*MULTIPOSE_HEADS, "Identity"])
            else:
                cache[key] = importers.load(_tfjs(key))
        return cache[key]
    return get  # type: ignore[return-value]


# --- the five real models ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name, size, layout, shapes", [
    ("movenet-lightning", (192, 192), "nhwc", [(1, 1, 17, 3)]),
    ("movenet-thunder", (256, 256), "nhwc", [(1, 1, 17, 3)]),
    ("movenet-multipose", (256, 256), "nhwc", [(1, 6, 56)]),
    ("centernet", (512, 512), "nhwc", [(1, 128, 128, 4), (1, 128, 128, 80), (1, 100, 6)]),
    ("nanodet", (416, 416), "nchw", [(1, 169, 80), (1, 169, 44), (1, 676, 80), (1, 2704, 80), (1, 676, 44),
                                     (1, 2704, 44)]),
])
def test_every_tfjs_model_imports_with_a_float_nhwc_input(imports: Any, name: str, size: tuple[int, int],
                                                          layout: str, shapes: list[tuple[int, ...]]) -> None:
    m = imports(name)
    assert m.fmt == "tfjs" and m.input.size == size and m.input.layout == layout
    outs = _run(m, _image("posenet_test_couple.jpg", size))
    assert [o.shape for o in outs] == shapes
    assert all(np.isfinite(o).all() for o in outs)
    if name != "nanodet":  # NanoDet (from ONNX) has no fused ops; the other four do
        assert any(n.startswith("split ") and not n.startswith("split 0 ") for n in m.notes), m.notes


@pytest.mark.slow
def test_imported_lightning_float_agrees_with_corals_int8_lightning(imports: Any) -> None:
    from ai_edge_litert.interpreter import Interpreter

    x = _image("coral_squat.bmp", (192, 192))
    ours = _run(imports("movenet-lightning"), x)[0][0, 0]
    interp = Interpreter(model_path=str(shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x.astype(np.uint8))
    interp.invoke()
    coral = interp.get_tensor(interp.get_output_details()[0]["index"])[0, 0]
    both = (ours[:, 2] > 0.3) & (coral[:, 2] > 0.3)
    assert both.sum() >= 12
    # int8 vs float of the same network: within 3% of the input side (measured 1.6%)
    assert np.abs(ours[both, :2] - coral[both, :2]).max() < 0.03
    assert np.abs(ours[:, 2] - coral[:, 2]).mean() < 0.15  # int8 scores are coarse (measured 0.11)


@pytest.mark.slow
def test_thunder_agrees_with_lightning_on_a_clear_person(imports: Any) -> None:
    light = _run(imports("movenet-lightning"), _image("coral_squat.bmp", (192, 192)))[0][0, 0]
    thunder = _run(imports("movenet-thunder"), _image("coral_squat.bmp", (256, 256)))[0][0, 0]
    both = (light[:, 2] > 0.3) & (thunder[:, 2] > 0.3)
    assert both.sum() >= 12 and np.abs(light[both, :2] - thunder[both, :2]).max() < 0.05


@pytest.mark.slow
def test_multipose_full_graph_finds_the_two_people(imports: Any) -> None:
    out = _run(imports("movenet-multipose"), _image("posenet_test_couple.jpg", (256, 256)))[0][0]
    people = out[out[:, 55] > 0.3]
    assert len(people) == 2 and (out[:, 55] > 0.1).sum() == 2
    for p in people:
        assert (p[2:51:3] > 0.3).sum() >= 12  # most keypoints confident
        ymin, xmin, ymax, xmax = p[51:55]
        ky, kx = p[0:51:3], p[1:51:3]
        inside = (ky >= ymin - 0.02) & (ky <= ymax + 0.02) & (kx >= xmin - 0.02) & (kx <= xmax + 0.02)
        assert inside.mean() > 0.9  # keypoints lie in the person's box
    a, b = people[:, 51:55]
    assert min(a[3], b[3]) < max(a[1], b[1]) + 0.05  # two people side by side, barely overlapping


@pytest.mark.slow
@pytest.mark.parametrize("image", ["posenet_test_couple.jpg", "ultralytics_bus.jpg", "ultralytics_zidane.jpg", DARK])
def test_multipose_decoder_reproduces_the_float_graph(imports: Any, image: str) -> None:
    """Golden test: our numpy decoder on the FLOAT heads == the float graph's own [1,6,56]."""
    m = imports("multipose-heads")
    *heads, graph = _run(m, _image(image, (256, 256)))
    ours = decode_raw([OutputTensor(h, name=n) for h, n in zip(heads, m.output_names)])
    assert graph.shape == (1, 6, 56) and ours.shape == (6, 56)
    # same float32 ops in another order: within 1e-4 (measured: identical)
    np.testing.assert_allclose(ours, graph[0], atol=1e-4)
    if image != DARK:  # real people, so the test has teeth; the dark one: near-ties of tiny centre values
        assert (graph[0, :, 55] > 0.2).sum() >= 2


@pytest.mark.slow
def test_centernet_detects_the_couple(imports: Any) -> None:
    det = _run(imports("centernet"), _image("posenet_test_couple.jpg", (512, 512)))[-1][0]
    people = det[(det[:, 5] == 0) & (det[:, 4] > 0.3)]
    assert len(people) >= 2
    assert ((people[:, 2] - people[:, 0]) > 50).all() and ((people[:, 3] - people[:, 1]) > 100).all()


@pytest.mark.slow
def test_nanodet_scores_a_person_high_through_the_nhwc_input(imports: Any) -> None:
    """NanoDet wants BGR normalised by its training mean/std (a wrong layout or order scores ~0.02)."""
    x = _image("posenet_test_couple.jpg", (416, 416))[..., ::-1]
    x = ((x - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]).astype(np.float32)
    outs = _run(imports("nanodet"), x)
    scores = [o for o in outs if o.shape[-1] == 80]
    best_class = max(scores, key=lambda s: s.max()).max(axis=1).argmax()
    assert best_class == 0 and max(s[..., 0].max() for s in scores) > 0.5  # person is COCO class 0


def test_an_unknown_output_name_is_one_clear_error() -> None:
    from tools import importers

    with pytest.raises(ModelError, match=r"no tensor named 'StatefulPartitionedCall/nope'.*--outputs"):
        importers.load(_tfjs("movenet-lightning"), outputs=["StatefulPartitionedCall/nope"])


# --- a small TF.js model with the other fused ops and a uint8-quantized weight ----------------

def _b64(*names: str) -> dict[str, Any]:
    return {"list": {"s": [base64.b64encode(n.encode()).decode() for n in names]}}


def _const(name: str, dtype: str = "DT_FLOAT") -> dict[str, Any]:
    return {"name": name, "op": "Const", "attr": {"dtype": {"type": dtype}, "value": {"tensor": {"dtype": dtype}}}}


def _write_model(folder: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """model.json + shard: int32 NHWC input -> conv [BiasAdd, Prelu] (uint8 weights) -> depthwise
    [FusedBatchNorm, LeakyRelu] (float16 weights) -> reshape -> matmul [BiasAdd, Relu6]."""
    w = {"conv_w": rng.normal(0, 0.1, (3, 3, 3, 4)).astype(np.float32), "conv_b": rng.normal(0, 1, 4),
         "alpha": rng.uniform(0.1, 0.3, 4), "dw_w": rng.normal(0, 0.3, (3, 3, 4, 1)),
         "bn_scale": rng.uniform(0.5, 1.5, 4), "bn_offset": rng.normal(0, 0.2, 4), "bn_mean": rng.normal(0, 0.2, 4),
         "bn_var": rng.uniform(0.5, 2, 4), "fc_w": rng.normal(0, 0.01, (64, 5)), "fc_b": rng.uniform(1, 4, 5)}
    w = {k: np.asarray(v, np.float32) for k, v in w.items()}
    shape = np.array([1, 64], np.int32)
    # conv_w stored as uint8 with scale/min; dw_w as float16; the rest float32; shape int32
    lo, hi = float(w["conv_w"].min()), float(w["conv_w"].max())
    scale = (hi - lo) / 255
    q = np.round((w["conv_w"] - lo) / scale).astype(np.uint8)
    w["conv_w"] = q.astype(np.float32) * np.float32(scale) + np.float32(lo)  # what the importer must rebuild
    entries, blobs = [], []
    for k, v in w.items():
        e: dict[str, Any] = {"name": k, "shape": list(v.shape), "dtype": "float32"}
        if k == "conv_w":
            e["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo}
            blobs.append(q.tobytes())
        elif k == "dw_w":
            e["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(v.astype(np.float16).tobytes())
            w[k] = v.astype(np.float16).astype(np.float32)
        else:
            blobs.append(v.tobytes())
        entries.append(e)
    entries.append({"name": "shape", "shape": [2], "dtype": "int32"})
    blobs.append(shape.tobytes())
    nhwc = {"data_format": {"s": base64.b64encode(b"NHWC").decode()}}
    same = {"padding": {"s": base64.b64encode(b"SAME").decode()}, "strides": {"list": {"i": ["1", "2", "2", "1"]}},
            "dilations": {"list": {"i": ["1", "1", "1", "1"]}}, "T": {"type": "DT_FLOAT"}, **nhwc}
    nodes = [
        {"name": "image", "op": "Placeholder", "attr": {"dtype": {"type": "DT_INT32"},
                                                         "shape": {"shape": {"dim": [{"size": "1"}, {"size": "-1"},
                                                                                     {"size": "-1"}, {"size": "3"}]}}}},
        {"name": "cast", "op": "Cast", "input": ["image"], "attr": {"SrcT": {"type": "DT_INT32"},
                                                                      "DstT": {"type": "DT_FLOAT"}}},
        *[_const(k) for k in w], _const("shape", "DT_INT32"),
        {"name": "conv", "op": "_FusedConv2D", "input": ["cast", "conv_w", "conv_b", "alpha"],
         "device": "/device:CPU:0", "attr": {**same, "num_args": {"i": "2"}, "fused_ops": _b64("BiasAdd", "Prelu")}},
        {"name": "dw", "op": "FusedDepthwiseConv2dNative", "input": ["conv", "dw_w", "bn_scale", "bn_offset",
                                                                      "bn_mean", "bn_var"],
         "attr": {**same, "num_args": {"i": "4"}, "epsilon": {"f": 0.001}, "leakyrelu_alpha": {"f": 0.1},
                  "fused_ops": _b64("FusedBatchNorm", "LeakyRelu")}},
        {"name": "flat", "op": "Reshape", "input": ["dw", "shape"], "attr": {"T": {"type": "DT_FLOAT"}}},
        {"name": "fc", "op": "_FusedMatMul", "input": ["flat", "fc_w", "fc_b"],
         "attr": {"T": {"type": "DT_FLOAT"}, "transpose_a": {"b": False}, "transpose_b": {"b": False},
                  "num_args": {"i": "1"}, "fused_ops": _b64("BiasAdd", "Relu6")}},
        {"name": "Identity", "op": "Identity", "input": ["fc"], "attr": {"T": {"type": "DT_FLOAT"}}},
    ]
    model = {"format": "graph-model", "modelTopology": {"node": nodes},
             "signature": {"inputs": {"image": {"name": "image:0", "tensorShape": {"dim": [
                 {"size": "1"}, {"size": "16"}, {"size": "16"}, {"size": "3"}]}}}},
             "weightsManifest": [{"paths": ["a.bin", "b.bin"], "weights": entries}]}
    data = b"".join(blobs)
    (folder / "a.bin").write_bytes(data[:100])  # weights split across two shards, mid-tensor
    (folder / "b.bin").write_bytes(data[100:])
    (folder / "model.json").write_text(json.dumps(model))
    return w


def _reference(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    y = tf.nn.conv2d(x, w["conv_w"], 2, "SAME") + w["conv_b"]
    y = tf.maximum(y, 0) + w["alpha"] * tf.minimum(y, 0)
    y = tf.nn.depthwise_conv2d(y, w["dw_w"], [1, 2, 2, 1], "SAME")
    y = (y - w["bn_mean"]) / np.sqrt(w["bn_var"] + 0.001) * w["bn_scale"] + w["bn_offset"]
    y = tf.nn.leaky_relu(y, 0.1)
    return np.asarray(tf.nn.relu6(tf.reshape(y, [1, 64]) @ w["fc_w"] + w["fc_b"]))


def test_fused_ops_and_quantized_weights_split_into_the_same_numbers(tmp_path: Path) -> None:
    from tools import importers

    w = _write_model(tmp_path, np.random.default_rng(7))
    m = importers.load(tmp_path)  # the folder; a dynamic input falls back to the signature's 16x16
    assert m.input.size == (16, 16) and m.output_names == ("Identity",)
    assert "split 3 fused ops" in m.notes
    x = np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3)).astype(np.float32)
    ours = _run(m, x)[0]
    np.testing.assert_allclose(ours, _reference(w, x), rtol=1e-4, atol=1e-4)
    assert ((ours > 0) & (ours < 6)).sum() >= 2  # not all clipped by Relu6: the comparison sees values
    # ... and through TFLite as quantize converts it
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(m.make_converter().convert()))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(interp.get_output_details()[0]["index"]), ours, atol=1e-4)


def test_input_size_option_overrides_the_dynamic_input(tmp_path: Path) -> None:
    from tools import importers

    _write_model(tmp_path, np.random.default_rng(7))
    # 32x32 would break the fixed reshape to 64 values: TF says so, as one line naming the model
    with pytest.raises(ModelError, match=r"model.json: TensorFlow cannot import the graph"):
        importers.load(tmp_path / "model.json", input_size=(32, 32))


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "b.bin").write_bytes(b"\0" * 10), r"truncated or belong to another model.json"),
    (lambda d: (d / "b.bin").unlink(), r"weight shard .*b.bin cannot be read.*keep the .bin files"),
    (lambda d: (d / "model.json").write_text("{not json"), r"is not a readable TF.js model.json"),
    (lambda d: (d / "model.json").write_text('{"format": "layers-model", "modelTopology": {}}'),
     r"not a TF.js graph model \(a layers-model is a Keras model"),
])
def test_damaged_tfjs_models_are_one_clear_error(tmp_path: Path, damage: Any, match: str) -> None:
    from tools import importers

    _write_model(tmp_path, np.random.default_rng(7))
    damage(tmp_path)
    with pytest.raises(ModelError, match=match):
        importers.load(tmp_path / "model.json")


# --- outputs= on a SavedModel (the same graph path) -------------------------------------------

def test_a_saved_model_is_cut_at_a_named_node(tmp_path: Path) -> None:
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from tools import importers

    inp = keras.Input((32, 32, 3))
    head = keras.layers.Conv2D(4, 3, name="head_conv")(inp)
    keras.Model(inp, keras.layers.GlobalAveragePooling2D()(head)).export(str(tmp_path / "sm"), verbose=False)
    with pytest.raises(ModelError, match=r"no tensor named 'nope' in the frozen graph.*--outputs"):
        importers.load(tmp_path / "sm", outputs=["nope"])
    name = "StatefulPartitionedCall/functional/head_conv/BiasAdd"
    try:
        m = importers.load(tmp_path / "sm", outputs=[name])
    except ModelError as err:  # Keras numbers layers per session: take the name it suggests
        name = str(err).split("similar: ")[1].split(",")[0].split(")")[0]
        m = importers.load(tmp_path / "sm", outputs=[name])
    assert m.fmt == "savedmodel" and m.input.size == (32, 32) and m.output_names == (name,)
    interp = Interpreter(model_content=bytes(m.make_converter().convert()))
    interp.allocate_tensors()
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    want = np.asarray(keras.Model(inp, head)(x))
    np.testing.assert_allclose(interp.get_tensor(interp.get_output_details()[0]["index"]), want, atol=1e-3)
