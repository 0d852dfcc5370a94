"""Bad models given to the importers (ONNX, PyTorch, float TFLite) and bad input-semantics
flags: each through the real `edgepose-tools quantize` in a subprocess, one stderr line,
exit 2, no traceback, and nothing written next to the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.faults.harness import Case, assert_one_line, run_case

QUANTIZE = ["edgepose-tools", "quantize", "--representative", "{shared}/images", "--decoder", "heatmap",
            "--schema", "coco17", "--no-progress"]


def _q(model: str, *extra: str) -> list[str]:
    return [*QUANTIZE[:2], model, *QUANTIZE[2:], *extra]


def _write(name: str, content: bytes) -> object:
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(content)
    return setup


def _onnx(name: str, *, op: str = "Relu", dynamic: bool = False) -> object:
    """A real one-node NCHW ONNX model (``op`` on the image) saved as tmp/name."""
    def setup(tmp: Path) -> None:
        onnx = pytest.importorskip("onnx")
        from onnx import TensorProto, helper

        dims: list[int | str] = [1, 3, "h", "w"] if dynamic else [1, 3, 32, 32]
        graph = helper.make_graph([helper.make_node(op, ["image"], ["out"])], "g",
                                  [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, dims)])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp / name))
    return setup


def _no_torch(tmp: Path) -> None:
    """A torch that cannot be imported, first on the path (torch may be installed here)."""
    (tmp / "notorch").mkdir()
    (tmp / "notorch" / "torch.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    (tmp / "model.pth").write_bytes(b"PK\x03\x04 not really a checkpoint")


def _only(*names: str):
    """Afterwards tmp holds exactly these entries: nothing was written."""
    def check(tmp: Path) -> None:
        assert sorted(p.name for p in tmp.iterdir()) == sorted(names)
    return check


CORAL = "{shared}/models/coral"
CASES = [
    Case("onnx-not-onnx", _q("{tmp}/model.onnx"), 2, r"model\.onnx is not an ONNX model",
         _write("model.onnx", b"this is a text file, not a model\n"), _only("model.onnx")),
    Case("onnx-unsupported-op", _q("{tmp}/erf.onnx"), 2, r"op Erf is not supported by the ONNX importer",
         _onnx("erf.onnx", op="Erf"), _only("erf.onnx")),
    Case("onnx-dynamic-size", _q("{tmp}/dyn.onnx"), 2, r"dynamic size; pass --input-size HxW",
         _onnx("dyn.onnx", dynamic=True), _only("dyn.onnx")),
    Case("pth-without-factory", _q("{tmp}/model.pth"), 2, r"model\.pth: .*pass --factory MODULE:CALLABLE",
         _write("model.pth", b"PK\x03\x04 weights"), _only("model.pth")),
    Case("torch-missing", _q("{tmp}/model.pth", "--factory", "mynet:build"), 2,
         r"needs torch, an optional extra: pip install 'edgepose\[torch\]'", _no_torch,
         _only("model.pth", "notorch"), env={"PYTHONPATH": "{tmp}/notorch"}),
    Case("tflite-not-a-flatbuffer", _q("{tmp}/model.tflite"), 2, r"not a TensorFlow Lite flatbuffer",
         _write("model.tflite", b"0123456789 text"), _only("model.tflite")),
    Case("tflite-already-int8", _q(f"{CORAL}/posenet_mobilenet_v1_075_353_481_quant.tflite", "--output",
                                   "{tmp}/out.tflite"), 2, r"is already quantized .*check and compile it as it is",
         check=_only(), needs=("models/coral/posenet_mobilenet_v1_075_353_481_quant.tflite",)),
    Case("tflite-already-compiled", _q(f"{CORAL}/movenet_single_pose_lightning_ptq_edgetpu.tflite", "--output",
                                       "{tmp}/out.tflite"), 2, r"already compiled for the Edge TPU",
         check=_only(), needs=("models/coral/movenet_single_pose_lightning_ptq_edgetpu.tflite",)),
    Case("layout-contradicts-the-model", _q("{tmp}/m.onnx", "--layout", "nhwc"), 2,
         r"is not a 3-channel NHWC image; fix --layout \(the model looks NCHW\)", _onnx("m.onnx"), _only("m.onnx")),
    Case("mean-two-values", _q("{tmp}/m.onnx", "--mean", "1", "2"), 2, r"--mean 1 2: give 1 value or 3",
         _onnx("m.onnx"), _only("m.onnx")),
    Case("std-zero", _q("{tmp}/m.onnx", "--std", "0"), 2, r"--std 0: every std must be positive",
         _onnx("m.onnx"), _only("m.onnx")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_import_fault(case: Case, tmp_path: Path) -> None:
    for need in case.needs:
        if not (SHARED / need).is_file():
            pytest.skip(f"{SHARED / need} not found: set EDGEPOSE_SHARED")
    if case.setup is not None:
        case.setup(tmp_path)
    proc = run_case(case, tmp_path)
    assert_one_line(case, proc)
    if case.check is not None:
        case.check(tmp_path)
