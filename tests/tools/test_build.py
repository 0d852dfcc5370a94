"""`edgepose-tools build` end to end on a tiny Keras model, with the fake edgetpu_compiler:
the files it writes, its summary, and a failed build that leaves nothing behind."""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import pytest

from edgepose.models.manifest import Manifest, load_manifest, write_manifest
from tests.conftest import shared_path
from tools.cli import main

pytestmark = pytest.mark.slow
SIZE = 64
FAKE = Path(__file__).with_name("fake_edgetpu_compiler.py")
BUILT = ["tiny_int8.tflite", "tiny_int8.toml", "tiny_float.tflite", "tiny_float.toml", "tiny_int8_report.json",
         "tiny_int8_report.png", "tiny_int8_overlay.png"]
COMPILED = ["tiny_int8_edgetpu.log", "tiny_int8_edgetpu.tflite", "tiny_int8_edgetpu.toml"]


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorflow")
    from tests.tools.tiny_models import heatmap_model

    path = tmp_path_factory.mktemp("src") / "tiny.keras"
    heatmap_model(SIZE).save(path)
    write_manifest(Manifest(name="tiny", file=path.name, input_size=(SIZE, SIZE), decoder="heatmap",
                            schema="coco17", resize="letterbox"), path.with_suffix(".toml"))
    return path


@pytest.fixture
def compiler_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for ``edgetpu_compiler``, alone on PATH (empty until ``install``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("EDGETPU_COMPILER", raising=False)
    return bin_dir


def install(bin_dir: Path) -> Path:
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["build", str(model), "--representative", str(shared_path("images")), "--samples", "6",
            "--held-out", "3", "--output", str(out), "--no-progress", *extra]


def _row(text: str, key: str) -> str:
    m = re.search(rf"^  {re.escape(key)}\s+(.*)$", text, re.M)
    assert m, f"no {key!r} row in:\n{text}"
    return m.group(1)


def test_build_writes_everything_and_summarises(keras_model: Path, compiler_bin: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    install(compiler_bin)
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "full")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    coco = shared_path("data", "coco17_dev")
    rc = main(_argv(keras_model, out_dir / "tiny_int8.tflite", "--coco", str(coco / "person_keypoints.json"),
                    "--images", str(coco / "images")))
    text = capsys.readouterr().out
    assert rc == 0, text
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(BUILT + COMPILED)  # no temporary folder left
    summary = text[text.index("build summary:"):]
    assert _row(summary, "files written").startswith(f"10 in {out_dir}: tiny_int8.tflite, tiny_int8.toml")
    assert _row(summary, "calibration") == f"6 images from {shared_path('images')}; 3 held out for the report"
    from tools.check import STATUS_TEXT, check_model

    status = check_model(out_dir / "tiny_int8.tflite").status
    assert status == "mapped" and _row(summary, "check") == f"mapped: {STATUS_TEXT['mapped']}"
    # The compiled twin: the fake copies its input and counts its real ops.
    ops = len(check_model(out_dir / "tiny_int8.tflite").ops)
    assert f"tiny_int8_edgetpu.tflite: {ops} of {ops} ops on the Edge TPU" in _row(summary, "compile")
    tpu = load_manifest(out_dir / "tiny_int8_edgetpu.toml")
    assert tpu.cpu_twin == "tiny_int8" and load_manifest(out_dir / "tiny_int8.toml").edgetpu_twin == tpu.name
    # AP float / int8 as `evaluate` computes them on the files now in place.
    from edgepose.estimators.factory import open_estimator
    from tools.evaluate import evaluate_coco

    engines = [open_estimator(str(out_dir / n), device="cpu") for n in ("tiny_float.tflite", "tiny_int8.tflite")]
    try:
        res = evaluate_coco(engines, coco / "person_keypoints.json", coco / "images")
    finally:
        for e in engines:
            e.close()
    ap = [m["AP"] for m in res["models"]]
    assert _row(summary, "AP float / int8").startswith(f"{ap[0]:.3f} / {ap[1]:.3f} (OKS AP on person_keypoints.json")
    # The verdict follows the report's own numbers and threshold.
    from tools.quant_report import USABLE_PCK

    report = json.loads((out_dir / "tiny_int8_report.json").read_text())
    pck = report["keypoints"]["pck@0.05"]
    assert report["verdict"]["usable"] == (pck >= USABLE_PCK)
    assert _row(summary, "int8 report").startswith("usable: " if pck >= USABLE_PCK else "NOT usable: ")
    assert f"PCK@0.05 {pck:.3f}" in _row(summary, "int8 report")
    # Outputs by role, per-layer errors, the overlay image.
    assert [o["name"] for o in report["outputs"]] == [f"heatmaps [1,{SIZE // 4},{SIZE // 4},17]"]
    layers = report["layers"]["layers"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= {lay["op"] for lay in layers}
    assert all(lay["rmse_scale"] >= 0 for lay in layers) and len(report["layers"]["worst"]) == min(5, len(layers))
    from edgepose.core.imageio import read_image

    overlay = read_image(out_dir / "tiny_int8_overlay.png")
    assert overlay.shape == (320, 640, 3)  # float | int8, each enlarged from 64 px to 320
    assert (overlay[:, :320] != overlay[:, 320:]).any() or report["keypoints"]["mean_distance_px"] == 0


def test_without_compiler_prints_the_command(keras_model: Path, compiler_bin: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny_int8.tflite"
    stale = tmp_path / "tiny_int8_edgetpu.tflite"  # compiled from an earlier build
    stale.write_bytes(b"an earlier compile")
    assert main(_argv(keras_model, out)) == 0
    text = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted([*BUILT, stale.name])
    assert stale.read_bytes() == b"an earlier compile"  # kept, and the summary says it is stale
    assert _row(text, "warning").startswith(f"{stale} is from an earlier build")
    row = _row(text, "compile")
    assert row.startswith("not run: edgetpu_compiler not found on PATH")
    assert row.endswith(f"edgetpu_compiler --out_dir {tmp_path} {out}")
    assert "AP float / int8" not in text


def test_failed_compile_leaves_nothing_and_keeps_old_files(keras_model: Path, compiler_bin: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    install(compiler_bin)
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "fail")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "tiny_int8.tflite").write_bytes(b"an earlier build")
    assert main(_argv(keras_model, out_dir / "tiny_int8.tflite")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "edgetpu_compiler failed" in err and "TRANSPOSE_CONV" in err
    assert [p.name for p in out_dir.iterdir()] == ["tiny_int8.tflite"]  # no temporary folder, no new file
    assert (out_dir / "tiny_int8.tflite").read_bytes() == b"an earlier build"
