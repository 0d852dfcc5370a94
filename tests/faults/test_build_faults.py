"""Issue 13, points 1 and 6: bringing a model to the Edge TPU with `quantize` / `build`.
Each bad input runs the real CLI in a subprocess: exit 2, one stderr line naming the
thing and the fix, no traceback, and the folder exactly as it was (no .tflite, manifest,
report or temporary folder left behind; an earlier output untouched)."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED
from tests.faults.harness import CLIS, Case, assert_one_line, run_case

FAKE = REPO / "tests" / "tools" / "fake_edgetpu_compiler.py"
_KERAS: dict[str, Path] = {}


def _keras_file() -> Path:
    """A tiny Keras heatmap model (64 px), built once per session in its own folder."""
    if "path" not in _KERAS:
        pytest.importorskip("tensorflow")
        from tests.tools.tiny_models import heatmap_model

        path = Path(tempfile.mkdtemp(prefix="edgepose-build-faults-")) / "tiny.keras"
        heatmap_model(64).save(path)
        _KERAS["path"] = path
    return _KERAS["path"]


MANIFEST = ('name = "tiny"\nfile = "tiny.keras"\ninput_size = [64, 64]\ndecoder = "heatmap"\n'
            'schema = "coco17"\n')


def _model(manifest: bool = True):
    def setup(tmp: Path) -> None:
        shutil.copyfile(_keras_file(), tmp / "tiny.keras")
        if manifest:
            (tmp / "tiny.toml").write_text(MANIFEST)
    return setup


def _write(name: str, content: bytes):
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(content)
    return setup


def _few_images(n: int = 3):
    def setup(tmp: Path) -> None:
        (tmp / "few").mkdir()
        for src in sorted((SHARED / "images").glob("*.jpg"))[:n]:
            shutil.copyfile(src, tmp / "few" / src.name)
    return setup


def _compiler(tmp: Path) -> None:
    (tmp / "bin").mkdir()
    exe = tmp / "bin" / "edgetpu_compiler"
    exe.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def _earlier_build(tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "tiny_int8.tflite").write_bytes(b"an earlier build")


def _all(*steps):
    def setup(tmp: Path) -> None:
        for step in steps:
            step(tmp)
    return setup


IMAGES = "{shared}/images"
OUT = ["--output", "{tmp}/out/tiny_int8.tflite"]
QUICK = ["--samples", "2", "--held-out", "1", "--no-progress"]

CASES = [
    # point 1: formats that dead-ended, each refused before any loading, naming the file
    Case("build-unknown-format", ["edgepose-tools", "build", "{tmp}/model.xyz", "--representative", IMAGES],
         2, r"model\.xyz: unknown model type '\.xyz'; give one of", setup=_write("model.xyz", b"x" * 64)),
    Case("quantize-damaged-onnx", ["edgepose-tools", "quantize", "{tmp}/bad.onnx", "--representative", IMAGES,
                                   "--decoder", "heatmap", "--schema", "coco17", "--output", "{tmp}/bad_int8.tflite"],
         2, r"bad\.onnx", setup=_write("bad.onnx", b"not an onnx protobuf" * 8)),
    Case("build-pth-checkpoint", ["edgepose-tools", "build", "{tmp}/net.pth", "--representative", IMAGES,
                                  "--decoder", "heatmap", "--schema", "coco17"],
         2, r"net\.pth", setup=_write("net.pth", b"PK\x03\x04 not a checkpoint")),
    # a float .tflite: the format is answered first (not --decoder/--schema, then a refusal)
    Case("quantize-float-tflite", ["edgepose-tools", "quantize", "{shared}/models/mediapipe/pose_landmark_lite.tflite",
                                   "--representative", IMAGES, "--output", "{tmp}/lite_int8.tflite"],
         2, r"pose_landmark_lite\.tflite"),
    Case("quantize-without-decoder-schema", ["edgepose-tools", "quantize", "{tmp}/tiny.keras", "--representative",
                                             IMAGES, *QUICK],
         2, r"tiny\.keras has no manifest \(tiny\.toml\) .*; pass --decoder and --schema \(decoders: .*heatmap",
         setup=_model(manifest=False)),
    Case("quantize-without-schema", ["edgepose-tools", "quantize", "{tmp}/tiny.keras", "--representative",
                                     IMAGES, "--decoder", "heatmap", *QUICK],
         2, r"pass --schema \(", setup=_model(manifest=False)),
    # point 6: too few images, said with the number needed
    Case("quantize-too-few-images", ["edgepose-tools", "quantize", "{tmp}/tiny.keras", "--representative",
                                     "{tmp}/few", "--samples", "50", "--no-progress"],
         2, r"representative set .*few has 3 usable image\(s\); calibration needs at least 10 \(--samples 50",
         setup=_all(_model(), _few_images(3))),
    Case("build-too-few-images", ["edgepose-tools", "build", "{tmp}/tiny.keras", "--representative", "{tmp}/few",
                                  "--samples", "4", "--no-progress", *OUT],
         2, r"has 3 usable image\(s\); calibration needs at least 4", setup=_all(_model(), _few_images(3),
                                                                                 _earlier_build)),
    # point 6: outputs checked against the decoder before anything is converted or written
    Case("quantize-decoder-mismatch", ["edgepose-tools", "quantize", "{tmp}/tiny.keras", "--representative", IMAGES,
                                       "--decoder", "movenet", "--schema", "coco17", *QUICK],
         2, r"tiny\.keras: model outputs \[1, 16, 16, 17\] don't fit decoder 'movenet'", setup=_model(manifest=False)),
    Case("build-decoder-mismatch", ["edgepose-tools", "build", "{tmp}/tiny.keras", "--representative", IMAGES,
                                    "--decoder", "posenet_multi", "--schema", "coco17", *QUICK, *OUT],
         2, r"don't fit decoder 'posenet_multi'", setup=_all(_model(manifest=False), _earlier_build)),
    # build's own steps: a compiler that fails, one that is not there, flags that go together
    Case("build-compile-fails", ["edgepose-tools", "build", "{tmp}/tiny.keras", "--representative", IMAGES,
                                 *QUICK, *OUT],
         2, r"edgetpu_compiler failed on .*tiny_int8\.tflite \(exit 1\): ERROR: Didn't find op",
         setup=_all(_model(), _compiler, _earlier_build),
         env={"PATH": "{tmp}/bin:/usr/bin:/bin", "FAKE_EDGETPU_MODE": "fail"}),
    Case("build-compiler-missing", ["edgepose-tools", "build", "{tmp}/tiny.keras", "--representative", IMAGES,
                                    *QUICK, *OUT, "--compiler", "{tmp}/no/edgetpu_compiler"],
         2, r"--compiler .*no/edgetpu_compiler: no such executable; edgetpu_compiler runs only on x86-64",
         setup=_all(_model(), _earlier_build)),
    Case("build-coco-without-images", ["edgepose-tools", "build", "{tmp}/tiny.keras", "--representative", IMAGES,
                                       "--coco", "{shared}/data/coco17_dev/person_keypoints.json"],
         2, r"--coco and --images go together", setup=_model()),
    Case("build-output-folder-missing", ["edgepose-tools", "build", "{tmp}/tiny.keras", "--representative", IMAGES,
                                         "--output", "{tmp}/nowhere/x.tflite"],
         2, r"--output .*nowhere/x\.tflite: directory .*nowhere does not exist; create it first", setup=_model()),
]


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones too) with its content hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_build_fault(case: Case, tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} not found: set EDGEPOSE_SHARED")
    if case.setup is not None:
        case.setup(tmp_path)
    before = _tree(tmp_path)
    proc = run_case(case, tmp_path, timeout=600)
    assert_one_line(case, proc)
    assert _tree(tmp_path) == before  # nothing written, nothing changed, no temporary folder left


def test_the_table_covers_both_commands() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.argv[1] for c in CASES} == {"quantize", "build"}


def test_check_of_a_float_tflite_points_at_build(tmp_path: Path) -> None:
    """`check` on a float model: one problem that names the command, not one per tensor."""
    model = SHARED / "models" / "mediapipe" / "pose_landmark_full.tflite"
    if not model.is_file():
        pytest.skip(f"{model} not found: set EDGEPOSE_SHARED")
    proc = subprocess.run([sys.executable, "-m", CLIS["edgepose-tools"], "check", "--quiet", str(model)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout.startswith("verdict: split") and proc.stdout.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", CLIS["edgepose-tools"], "check", str(model)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    summary = proc.stdout[proc.stdout.rindex("pose_landmark_full.tflite: "):].splitlines()
    errors = [line for line in summary if line.startswith("error:")]
    assert errors == [errors[0]] and "is a float model" in errors[0] and "edgepose-tools build" in errors[0]
    assert not [line for line in summary if "more problems" in line]
    size = float(summary[0].split("parameters ")[1].split(" MiB")[0])
    assert 0.9 * model.stat().st_size / 2**20 < size <= model.stat().st_size / 2**20
