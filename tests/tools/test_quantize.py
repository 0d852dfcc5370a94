"""Full-int8 quantization of a small Keras heatmap model with real images."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import EdgePoseError, ModelError
from edgepose.core.preprocess import resize, to_input_tensor
from edgepose.models.manifest import Manifest, load_manifest, write_manifest
from tests.conftest import load_rgb, shared_path
from tools.check import check_model
from tools.cli import main
from tools.errors import ConversionError, DataError, ToolError
from tools.quantize import _convert, load_representative, quantize

pytestmark = pytest.mark.slow
SIZE = 64


def _save(model: object, folder: Path, name: str) -> Path:
    path = folder / f"{name}.keras"
    model.save(path)  # type: ignore[attr-defined]
    write_manifest(Manifest(name=name, file=path.name, input_size=(SIZE, SIZE), decoder="heatmap",
                            schema="coco17", resize="letterbox"), path.with_suffix(".toml"))
    return path


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    from tests.tools.tiny_models import heatmap_model

    return _save(heatmap_model(SIZE), tmp_path_factory.mktemp("keras"), "tiny_heatmap")


@pytest.fixture(scope="module")
def quantized(keras_model: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("q") / "tiny_heatmap_int8.tflite"
    return quantize(keras_model, shared_path("images"), out, num_samples=6, held_out=3, progress=False)


def test_quantized_model_report_and_manifest(quantized, keras_model: Path) -> None:  # type: ignore[no-untyped-def]
    r = quantized
    assert r.model_path.is_file() and r.figure_path.stat().st_size > 1000
    assert r.figure_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(r.report_path.read_text())
    (out,) = report["outputs"]
    assert out["shape"] == [1, SIZE // 4, SIZE // 4, 17]
    # int8 error is real but small next to the float output's range.
    spread = out["float_range"][1] - out["float_range"][0]
    assert 0 < out["mean_abs"] < 0.05 * spread and out["max_abs"] < 0.5 * spread
    kp = report["keypoints"]
    assert 0.0 <= kp["pck@0.05"] <= 1.0 and len(kp["per_keypoint_pck"]) == 17
    assert np.asarray(kp["distances_px"]).shape == (3, 17)
    assert report["num_samples"] == 6 and report["io"] == "uint8"
    # The int8 model passes the Edge TPU check, and its manifest feeds it right.
    assert check_model(r.model_path).status == "mapped"
    m = load_manifest(r.manifest_path)
    assert (m.file, m.decoder, m.schema, m.input_size) == (r.model_path.name, "heatmap", "coco17", (SIZE, SIZE))
    scale, zero = report["input_quantization"]
    frame, _ = resize(load_rgb(shared_path("images", "coral_squat.bmp")), (SIZE, SIZE), "letterbox")
    fed = to_input_tensor(frame, np.uint8, (scale, zero), m.mean, m.std)
    expected = np.clip(np.round(frame / scale + zero), 0, 255)  # the float model takes raw pixels
    assert np.abs(fed[0].astype(int) - expected).max() <= 1


def test_representative_from_video_and_folder() -> None:
    video = load_representative(shared_path("videos", "sports2d_demo.mp4"), 5, (48, 48), progress=False)
    assert len(video) == 5 and video[0].shape == (1, 48, 48, 3)
    assert not np.array_equal(video[0], video[-1])  # frames spread over the clip
    images = load_representative(shared_path("images"), 100, (48, 48), mean=(127.5,), std=(127.5,), progress=False)
    assert len(images) == len([p for p in shared_path("images").iterdir() if p.suffix in (".jpg", ".jpeg", ".png", ".bmp")])
    assert -1.0 <= min(x.min() for x in images) and max(x.max() for x in images) <= 1.0


@pytest.mark.parametrize("case, error, match", [
    ("empty-representative", DataError, "has no images"),
    ("missing-model", ModelError, "not found"),
    ("missing-output-dir", ToolError, "does not exist"),
    ("non-quantizable-op", ConversionError, "conversion of .* failed: 'tf.Erf' op"),
    ("no-held-out-images", ToolError, "--held-out 0: need at least 1"),  # TF would write a float model
    ("output-is-a-folder", ToolError, "is a folder; give the .tflite file"),
    ("text-file-named-keras", ModelError, "not a Keras model archive"),
    ("text-representative", DataError, "not an image, a TFRecord or a video"),
    ("corrupt-tfrecord", DataError, "is not a TFRecord of people"),
])
def test_bad_inputs_one_line_exit_2(case: str, error: type, match: str, keras_model: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    model, rep, out, held = keras_model, shared_path("images"), tmp_path / "out.tflite", 1
    if case == "no-held-out-images":
        held = 0
    elif case == "output-is-a-folder":
        out = tmp_path
    elif case == "text-file-named-keras":
        model = tmp_path / "notes.keras"
        model.write_text("not a model")
        write_manifest(load_manifest(keras_model.with_suffix(".toml")), model.with_suffix(".toml"))
    elif case == "text-representative":
        rep = shared_path("data", "mpii_sample", "test_mpii.json")
    elif case == "corrupt-tfrecord":
        rep = tmp_path / "calib.tfrecord"
        rep.write_bytes(b"this is not a TFRecord file at all")
    elif case == "empty-representative":
        rep = tmp_path / "empty"
        rep.mkdir()
    elif case == "missing-model":
        model = tmp_path / "missing.keras"
    elif case == "missing-output-dir":
        out = tmp_path / "no" / "out.tflite"
    else:
        from tests.tools.tiny_models import erf_model

        model = tmp_path / "erf_saved"  # a SavedModel (a Lambda layer doesn't reload from .keras)
        erf_model(SIZE).export(str(model))
        write_manifest(Manifest(name="erf", file="erf.tflite", input_size=(SIZE, SIZE), decoder="heatmap",
                                schema="coco17"), model / "manifest.toml")
    with pytest.raises(error, match=match) as info:
        quantize(model, rep, out, num_samples=2, held_out=held, progress=False)
    assert isinstance(info.value, EdgePoseError) and "\n" not in str(info.value)
    assert not out.is_file()  # nothing written under the int8 name
    argv = ["quantize", str(model), "--representative", str(rep), "--output", str(out),
            "--samples", "2", "--held-out", str(held), "--no-progress"]
    if held < 1:
        with pytest.raises(SystemExit) as stop:  # rejected by argparse before any work
            main(argv)
        assert stop.value.code == 2
    else:
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edgepose-tools")


def test_progress_bar_counts_the_images_there_are(capsys: pytest.CaptureFixture[str]) -> None:
    from edgepose.core.imageio import list_images
    from tools.quantize import available_frames

    folder = shared_path("images")
    n = len(list_images(folder))
    assert available_frames(folder, 108) == n and available_frames(folder, 3) == 3
    import cv2

    video = shared_path("videos", "sports2d_demo.mp4")
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert available_frames(video, 10**6) == frames and available_frames(video, 5) == 5
    assert len(load_representative(folder, 108, (32, 32), progress=True)) == n
    bar = capsys.readouterr().err
    assert f"{n}/{n}" in bar and "/108" not in bar


def test_fewer_images_than_samples_are_said(keras_model: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from edgepose.core.imageio import list_images

    n = len(list_images(shared_path("images")))  # 11: fewer than 50, more than the minimum of 10
    out = tmp_path / "m_int8.tflite"
    assert main(["quantize", str(keras_model), "--representative", str(shared_path("images")), "--samples", "50",
                 "--held-out", "2", "--output", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert (f"calibration: {n} images from {shared_path('images')} ({n} of 50 requested: the set has no more); "
            "2 held out for the report, overlapping calibration") in text
    report = json.loads(out.with_name("m_int8_report.json").read_text())
    assert (report["num_samples"], report["requested_samples"], report["held_out"]) == (n, 50, 2)
    assert "verdict: " in text and "layer CONV_2D" in text


class _PrintingConverter:
    """What TensorFlow's converter did when Ctrl-C came mid-call: it printed the
    traceback of the error it swallowed to sys.stderr, then raised an error of its own."""

    def convert(self) -> bytes:
        sys.stderr.write("Traceback (most recent call last):\n"
                         "SystemError: <built-in function __import__> returned a result with an exception set\n")
        print("Saved artifact at /tmp/x")
        raise AttributeError("'dict' object has no attribute '_type_spec'")


def test_what_the_converter_prints_goes_to_the_debug_log(capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="tools.quantize")
    with pytest.raises(ConversionError, match=r"^float conversion of m\.keras failed: 'dict' object has no "
                       r"attribute '_type_spec'; replace that op or layer$"):
        _convert(_PrintingConverter(), "float conversion of m.keras")
    assert capsys.readouterr() == ("", "")
    assert "SystemError: <built-in function __import__>" in caplog.text and "Saved artifact" in caplog.text
