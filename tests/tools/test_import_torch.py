"""The PyTorch entry point: a module factory + a state_dict checkpoint + an input size ->
ONNX -> our ONNX importer -> int8. Runs where torch is installed (the optional ``torch``
extra) and is skipped otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path

pytestmark = pytest.mark.slow
torch = pytest.importorskip(
    "torch", reason="torch is the optional extra edgepose[torch] (PyPI's Linux wheels pull GBs of CUDA "
                    "libraries, so CI need not install it)")
SIZE = (128, 96)
FACTORY = "tests.tools.torch_models:simple_baselines"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from tests.tools.torch_models import simple_baselines

    torch.manual_seed(0)
    net = simple_baselines()
    for m in net.modules():  # trained-like BatchNorm statistics, not the 0/1 defaults
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.8, 1.2)
            m.weight.data.uniform_(0.8, 1.2)
            m.bias.data.normal_(0.0, 0.1)
    path = tmp_path_factory.mktemp("pt") / "sb.pth"
    torch.save({"state_dict": net.state_dict()}, path)  # a training checkpoint's wrapper
    return path, net.eval()


def test_factory_checkpoint_to_tflite_matches_torch(checkpoint) -> None:  # type: ignore[no-untyped-def]
    from ai_edge_litert.interpreter import Interpreter

    from tools import importers

    path, net = checkpoint
    imported = importers.load(path, factory=FACTORY, input_size=SIZE)
    assert (imported.fmt, imported.input.layout, imported.input.size) == ("torch", "nchw", SIZE)
    it = Interpreter(model_content=imported.make_converter().convert())
    it.allocate_tensors()
    x = np.random.default_rng(0).normal(0.0, 1.0, (1, *SIZE, 3)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    with torch.no_grad():
        ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    assert got.shape == ref.shape == (1, SIZE[0] // 4, SIZE[1] // 4, 17)
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()


def test_checkpoint_quantizes_and_maps(checkpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tools.check import check_model
    from tools.quantize import quantize

    r = quantize(checkpoint[0], shared_path("data", "limbs12_dev", "images"), tmp_path / "sb_int8.tflite",
                 num_samples=9, held_out=3, decoder="heatmap", schema="coco17", progress=False,
                 mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                 import_options={"factory": FACTORY, "input_size": SIZE})
    assert check_model(r.model_path).status == "mapped"
    assert r.report["input"]["format"] == "torch" and r.report["input"]["source_layout"] == "nchw"
