"""Compile wrapper with a fake edgetpu_compiler (the real one is x86-64 Debian/Ubuntu only)."""

from __future__ import annotations

import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

from edgepose.manifest import load_manifest, write_manifest
from edgepose.registry import get_manifest, resolve_model
from tests.conftest import shared_path
from tools.compile import (
    MAPPED, compile_model, find_compiler, parse_operation_log, parse_size, parse_summary,
)
from tools.check import check_model
from tools.cli import main
from tools.errors import CompilerNotFoundError, ToolError

FAKE = Path(__file__).with_name("fake_edgetpu_compiler.py")


@pytest.fixture
def fake_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``edgetpu_compiler`` on PATH (and nothing else of that name)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("EDGETPU_COMPILER", raising=False)
    return exe


@pytest.fixture
def cpu_model(tmp_path: Path) -> Path:
    """The PoseNet backbone with its manifest as a sidecar, in a temp dir."""
    src = shared_path("models", "coral", "posenet_mobilenet_v1_075_481_641_quant.tflite")
    work = tmp_path / "work"
    work.mkdir()
    dst = work / src.name
    shutil.copyfile(src, dst)
    m = get_manifest("posenet-mobilenet-v1-075-481x641")
    write_manifest(m.with_(file=dst.name), dst.with_suffix(".toml"))
    return dst


def test_fully_mapped_model(fake_compiler: Path, cpu_model: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "full")
    r = compile_model(cpu_model, tmp_path)
    out = tmp_path / "posenet_mobilenet_v1_075_481_641_quant_edgetpu.tflite"
    assert r.output_models == [out] and out.is_file()
    assert r.summary["on_chip_bytes"] == parse_size("2.72MiB") and r.summary["off_chip_bytes"] == 0
    assert r.summary["subgraphs"] == 1
    # The op table matches the real model's op counts (the fake counts them) and all map.
    ops = check_model(cpu_model).ops
    assert r.fully_mapped and r.mapped_ops == len(ops) == r.summary["tpu_ops"]
    assert {e.op for e in r.ops} == {op.name for op in ops}
    m = load_manifest(r.manifest_path)
    cpu = load_manifest(cpu_model.with_suffix(".toml"))
    assert (m.device, m.cpu_twin, m.file) == ("edgetpu", cpu.name, out.name)
    assert (m.decoder, m.schema, m.input_size, m.resize) == (cpu.decoder, cpu.schema, cpu.input_size, cpu.resize)
    # The runtime's registry resolves the compiled file through this manifest.
    assert resolve_model(str(out)).manifest.device == "edgetpu"


def test_partially_mapped_model_reports_counts_and_reasons(fake_compiler: Path, cpu_model: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "partial")
    assert main(["compile", str(cpu_model), "--show-operations", "--timeout-sec", "60"]) == 0
    text = capsys.readouterr().out
    log = cpu_model.with_name(cpu_model.stem + "_edgetpu.log")
    r = compile_model(cpu_model)
    assert r.log_path == log
    assert r.mapped_ops == r.summary["tpu_ops"] and r.unmapped_ops == r.summary["cpu_ops"]
    assert r.mapped_ops + r.unmapped_ops == r.summary["total_ops"] and not r.fully_mapped
    reasons = r.reasons()
    assert set(reasons) == {"More than one subgraph is not supported",
                            "Operation is working on an unsupported data type",
                            "Operation is otherwise supported, but not mapped due to some unspecified limitation",
                            "Operation not supported"}
    assert "GATHER_ND x4" in reasons["Operation not supported"]
    assert "not mapped: GATHER_ND x4: Operation not supported" in text
    assert f"{r.summary['cpu_ops']} on the CPU" in text


def test_log_parser_keeps_repeated_operators() -> None:
    text = ("Edge TPU Compiler version 16.0\nInput: a.tflite\nOutput: a_edgetpu.tflite\n\n"
            "Operator                       Count      Status\n\n"
            "QUANTIZE                       1          Mapped to Edge TPU\n"
            "QUANTIZE                       2          Operation version not supported\n")
    rows = parse_operation_log(text)
    assert [(e.op, e.count, e.mapped) for e in rows] == [("QUANTIZE", 1, True), ("QUANTIZE", 2, False)]
    assert rows[0].status == MAPPED
    assert parse_summary("Number of Edge TPU subgraphs: 2\nOff-chip memory used for streaming uncached model "
                         "parameters: 1.50KiB")["off_chip_bytes"] == 1536


def test_missing_compiler_is_one_line_and_exit_2(cpu_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("EDGETPU_COMPILER", raising=False)
    with pytest.raises(CompilerNotFoundError, match="x86-64 Debian/Ubuntu"):
        find_compiler()
    assert main(["compile", str(cpu_model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "edgetpu-compiler" in err and "Docker" in err


@pytest.mark.parametrize("setup, error, match", [
    ("env-missing", CompilerNotFoundError, r"\$EDGETPU_COMPILER .*no such executable"),
    ("fail", ToolError, "TRANSPOSE_CONV' version '4'"),
    ("no-model", Exception, "not found"),
    ("no-out-dir", ToolError, "no such directory"),
    ("out-dir-is-a-file", ToolError, "is a file, not a folder"),
    # exits 0 without writing anything: the outputs of an earlier run must not pass as new
    ("writes-nothing", ToolError, "exited 0 but did not write .*_edgetpu.tflite"),
])
def test_bad_inputs(fake_compiler: Path, cpu_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str], setup: str, error: type, match: str) -> None:
    args = [str(cpu_model)]
    if setup == "env-missing":
        monkeypatch.setenv("EDGETPU_COMPILER", str(tmp_path / "nowhere" / "edgetpu_compiler"))
    elif setup == "fail":
        monkeypatch.setenv("FAKE_EDGETPU_MODE", "fail")
    elif setup == "no-model":
        args = [str(tmp_path / "missing.tflite")]
    elif setup == "out-dir-is-a-file":
        args += ["--out-dir", str(cpu_model)]
    elif setup == "writes-nothing":
        assert compile_model(cpu_model).output_models[0].is_file()  # an earlier, real run
        time.sleep(1.5)  # its files are now older than the next run's start
        fake_compiler.write_text("#!/bin/sh\nexit 0\n")
    else:
        args += ["--out-dir", str(tmp_path / "missing")]
    assert main(["compile", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    with pytest.raises(error, match=match):
        compile_model(args[0], None if len(args) == 1 else args[2])


def test_num_segments_must_be_positive(cpu_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ToolError, match="--num-segments 0"):
        compile_model(cpu_model, num_segments=0)
    with pytest.raises(SystemExit) as stop:
        main(["compile", str(cpu_model), "--num-segments", "-2"])
    assert stop.value.code == 2 and "not a positive integer" in capsys.readouterr().err
