"""Reading Edge TPU executables: parameter caching tokens and co-compilation."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgepose.core.errors import ModelError
from edgepose.models.registry import resolve_model
from edgepose.models.tflite_info import (
    co_compilation_warning,
    co_compiled,
    edgetpu_executables,
    parameter_caching_tokens,
)
from tests.conftest import shared_path

MOVENET_TPU = ("models", "coral", "movenet_single_pose_lightning_ptq_edgetpu.tflite")
POSENET_SOURCE = ("models", "coral", "posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu.tflite")


def test_coral_builds_carry_a_parameter_caching_pair_with_one_token() -> None:
    (op,) = edgetpu_executables(shared_path(*MOVENET_TPU))
    kinds = sorted(ex.kind for ex in op)
    assert kinds == ["execution-only", "parameter-caching"]
    assert len({ex.caching_token for ex in op}) == 1 and op[0].caching_token != 0
    # The parameters live in the caching executable: ~2.7 MiB for MoveNet Lightning.
    cached = next(ex for ex in op if ex.kind == "parameter-caching")
    assert 2 << 20 < cached.parameter_bytes < 4 << 20
    assert edgetpu_executables(shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")) == []


def test_separately_compiled_models_are_not_co_compiled() -> None:
    movenet, posenet = shared_path(*MOVENET_TPU), resolve_model("posenet-mobilenet-v1-075-481x641-edgetpu").path
    assert parameter_caching_tokens(movenet) != parameter_caching_tokens(posenet)
    assert not co_compiled(movenet, posenet)
    msg = co_compilation_warning([movenet, posenet])
    assert msg is not None and "\n" not in msg
    assert movenet.name in msg and posenet.name in msg and "edgepose-tools compile" in msg
    # The derived PoseNet keeps Coral's executable, so it shares its source's token.
    assert co_compiled(posenet, shared_path(*POSENET_SOURCE))
    # A CPU model does not compete for the Edge TPU's cache.
    cpu = shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")
    assert co_compilation_warning([cpu, movenet]) is None and not co_compiled(cpu, movenet)


def test_a_pair_sharing_a_token_counts_as_co_compiled(tmp_path: Path) -> None:
    """Stand-in for a co-compiled pair: MoveNet with its caching token set to PoseNet's,
    written straight into the bytes (found without our parser: both executables hold it)."""
    movenet, posenet = shared_path(*MOVENET_TPU), shared_path(*POSENET_SOURCE)
    (mine,), (theirs,) = parameter_caching_tokens(movenet), parameter_caching_tokens(posenet)
    data = movenet.read_bytes()
    old, new = struct.pack("<Q", mine), struct.pack("<Q", theirs)
    assert data.count(old) == 2
    twin = tmp_path / "movenet_cocompiled_edgetpu.tflite"
    twin.write_bytes(data.replace(old, new))
    assert co_compiled(twin, posenet) and co_compilation_warning([twin, posenet]) is None


def test_a_damaged_executable_is_one_line(tmp_path: Path) -> None:
    data = bytearray(shared_path(*MOVENET_TPU).read_bytes())
    at = data.find(b"DWN1")
    data[at - 4:at + 64] = b"\xff" * 68  # the package's root offset and header
    bad = tmp_path / "bad_edgetpu.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="cannot read its Edge TPU executable") as err:
        parameter_caching_tokens(bad)
    assert "\n" not in str(err.value)
