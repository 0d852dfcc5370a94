"""The decoder-free Edge TPU PoseNet derived from Coral's decoder build (edgepose.models.derive)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import FetchError, ModelError
from edgepose.models.derive import POSENET_DECODER_OP, derive, strip_posenet_decoder
from edgepose.models.registry import cache_dir, fetch_model, get_manifest, resolve_model
from edgepose.models.tflite_info import EDGETPU_CUSTOM_OP
from tests.conftest import load_rgb, shared_path

TPU = "posenet-mobilenet-v1-075-481x641-edgetpu"
CPU = "posenet-mobilenet-v1-075-481x641"
SOURCE = "posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu.tflite"
COUPLE = ("images", "posenet_test_couple.jpg")


def _source() -> Path:
    return shared_path("models", "coral", SOURCE)


def _graph(path: Path):  # type: ignore[no-untyped-def]
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    return model, model.Subgraphs(0)


def _custom_code(model, op) -> str:  # type: ignore[no-untyped-def]
    return model.OperatorCodes(op.OpcodeIndex()).CustomCode().decode()


def _outputs_by_channels(path: Path) -> dict[int, dict]:
    """The TFLite interpreter's own view of the outputs (its C++ loader parses the file)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=path.read_bytes()).get_output_details()
    return {int(d["shape"][-1]): d for d in details}


def test_derived_model_is_one_edgetpu_op_whose_outputs_are_the_decoder_inputs() -> None:
    source = _source()
    derived = resolve_model(TPU).path  # derived on demand, like a download
    assert derived.parent == cache_dir()
    model, graph = _graph(derived)
    assert graph.OperatorsLength() == 1 and _custom_code(model, graph.Operators(0)) == EDGETPU_CUSTOM_OP
    assert model.OperatorCodesLength() == 1 and model.BuffersLength() == 1
    # The Edge TPU executable is carried over byte for byte.
    src_model, src_graph = _graph(source)
    ops = {_custom_code(src_model, src_graph.Operators(i)): src_graph.Operators(i)
           for i in range(src_graph.OperatorsLength())}
    assert set(ops) == {EDGETPU_CUSTOM_OP, POSENET_DECODER_OP}
    assert graph.Operators(0).CustomOptionsAsNumpy().tobytes() == \
        ops[EDGETPU_CUSTOM_OP].CustomOptionsAsNumpy().tobytes()

    outs = _outputs_by_channels(derived)
    assert sorted(outs) == [17, 34, 64]  # heatmaps, short offsets, mid offsets
    # Same shapes and types as the CPU backbone's outputs of the same channel count...
    backbone = _outputs_by_channels(resolve_model(CPU).path)
    for c, d in outs.items():
        assert list(d["shape"]) == list(backbone[c]["shape"]) == [1, 31, 41, c]
        assert d["dtype"] == backbone[c]["dtype"] == np.uint8
    # ...and the quantization of the very tensors Coral's decoder op read in the source.
    decoder_inputs = ops[POSENET_DECODER_OP].InputsAsNumpy()
    for t in (src_graph.Tensors(int(i)) for i in decoder_inputs):
        q = t.Quantization()
        scale, zero = outs[int(t.ShapeAsNumpy()[-1])]["quantization"]
        assert (np.float32(scale), zero) == (q.ScaleAsNumpy()[0], q.ZeroPointAsNumpy()[0])


def test_tflite_runtime_accepts_the_flatbuffer_up_to_the_missing_edgetpu_op() -> None:
    """TFLite verifies and loads the derived graph; only the Edge TPU op itself is missing here."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=resolve_model(TPU).path.read_bytes())
    with pytest.raises(RuntimeError, match=f"unresolved custom op: {EDGETPU_CUSTOM_OP}"):
        interp.allocate_tensors()


def test_derivation_is_deterministic_and_matches_the_pinned_sha256() -> None:
    data = _source().read_bytes()
    first, second = strip_posenet_decoder(data), derive("strip-posenet-decoder", data)
    assert first == second
    assert hashlib.sha256(first).hexdigest() == get_manifest(TPU).sha256
    assert resolve_model(TPU).path.read_bytes() == first


def test_damaged_or_wrong_source_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    damaged = bytearray(_source().read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (folder / SOURCE).write_bytes(bytes(damaged))
    with pytest.raises(FetchError, match=f"sha256 .* is not that of {SOURCE}") as err:
        fetch_model(TPU, source_dir=folder, force=True)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(folder))  # a damaged copy on the model path
    with pytest.raises(FetchError, match="is not that of"):
        resolve_model(TPU)
    assert not cache_dir().exists() or not any(cache_dir().iterdir())  # nothing written, nothing partial

    with pytest.raises(ModelError, match=f"no {POSENET_DECODER_OP} to strip \\(custom ops: edgetpu-custom-op\\)"):
        strip_posenet_decoder(shared_path("models", "coral", "movenet_single_pose_lightning_ptq_edgetpu.tflite")
                              .read_bytes())
    with pytest.raises(ModelError, match="truncated or corrupt"):
        strip_posenet_decoder(_source().read_bytes()[:4096])
    with pytest.raises(ModelError, match="unknown derivation 'x'"):
        derive("x", b"")


def test_not_derived_yet_without_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPOSE_MODEL_PATH")
    with pytest.raises(ModelError, match=f"'{TPU}' is not derived yet; run `edgepose models fetch {TPU}`"):
        resolve_model(TPU, fetch=False)


def test_detect_on_the_edge_tpu_without_libedgetpu_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from edgepose.cli.main import main

    image = shared_path(*COUPLE)
    assert main(["detect", "--device", "edgetpu", "--model", TPU, str(image)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "libedgetpu.so.1 could not be loaded" in err


def test_auto_falls_back_to_the_cpu_backbone_with_identical_poses(capsys: pytest.CaptureFixture[str]) -> None:
    from edgepose.cli.main import main

    image = str(shared_path(*COUPLE))
    assert main(["detect", "--model", TPU, "--device", "auto", "--json", image]) == 0
    fallback = json.loads(capsys.readouterr().out)
    assert main(["detect", "--model", CPU, "--device", "cpu", "--json", image]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert len(direct) >= 2 and fallback == direct


def test_fetch_all_from_a_folder_derives_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """What scripts/setup.sh runs: `models fetch --all --from ../shared/models`."""
    from edgepose.cli.main import main

    monkeypatch.delenv("EDGEPOSE_MODEL_PATH")
    folder = tmp_path / "models"
    (folder / "coral").mkdir(parents=True)
    shutil.copyfile(_source(), folder / "coral" / SOURCE)
    assert main(["models", "fetch", TPU, "--from", str(folder)]) == 0
    assert f"derived from {SOURCE}, sha256 verified" in capsys.readouterr().out
    assert [p.name for p in cache_dir().iterdir()] == [get_manifest(TPU).file]
    assert main(["models", "fetch", TPU]) == 0
    assert "already there, sha256 verified; --force derives it again" in capsys.readouterr().out


@pytest.mark.edgetpu
def test_derived_model_on_the_edge_tpu_matches_coral_reference() -> None:
    """Golden test on a Pi: the derived model's outputs through edgepose's decoder against
    Coral's C++ PosenetDecoderOp output, on the image resized as Coral did (PIL nearest)."""
    from edgepose.core.preprocess import Transform
    from edgepose.decoders import get_decoder
    from edgepose.inference.engine import open_engine
    from tests.edgepose.conftest import pil_resize
    from tests.edgepose.decoders.test_posenet import CORAL_OPTIONS, assert_matches_coral_reference

    h, w = 481, 641
    image = pil_resize(load_rgb(shared_path(*COUPLE)), (h, w), "nearest")
    with open_engine(TPU, "edgetpu") as engine:
        assert engine.device == "edgetpu"
        outputs = engine.invoke(image[None])
    poses = get_decoder("posenet_multi")(outputs, Transform.identity(h, w), **CORAL_OPTIONS)
    assert_matches_coral_reference(poses, h, w)
