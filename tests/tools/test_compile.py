"""Compile wrapper with a fake edgetpu_compiler (the real one is x86-64 Debian/Ubuntu only)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgepose.models.manifest import load_manifest, write_manifest
from edgepose.models.registry import get_manifest, resolve_model
from tests.conftest import shared_path
from tools.check import check_model
from tools.cli import main
from tools.compile import (
    MAPPED,
    compile_model,
    compile_models,
    find_compiler,
    parse_operation_log,
    parse_report,
    parse_size,
    parse_summary,
    shared_cache,
)
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
    # The fake caches the whole model on chip (it takes its file size; printed in MiB).
    assert abs(r.summary["on_chip_bytes"] - cpu_model.stat().st_size) <= 0.005 * 2**20
    assert r.summary["off_chip_bytes"] == 0 and r.summary["subgraphs"] == 1
    # The op table matches the real model's op counts (the fake counts them) and all map.
    ops = check_model(cpu_model).ops
    assert r.fully_mapped and r.mapped_ops == len(ops) == r.summary["total_ops"]
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


@pytest.mark.parametrize("mode, what", [
    ("empty", "an empty file (0 bytes)"),
    ("garbage", "29 bytes that are not a TFLite model"),
    ("no-custom-op", "a TFLite model without the edgetpu-custom-op"),
])
def test_a_compiler_that_exits_0_with_a_bad_output_fails(
        fake_compiler: Path, cpu_model: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], mode: str, what: str) -> None:
    """Exit 0 and a success report are not enough: the output must be a TFLite model with
    the Edge TPU custom op, else exit 2 in one line and nothing of the run is left."""
    monkeypatch.setenv("FAKE_EDGETPU_MODE", mode)
    assert main(["compile", str(cpu_model)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and f"exited 0 but wrote {what}" in captured.err
    assert "compiled in" not in captured.out
    stem = cpu_model.with_name(cpu_model.stem + "_edgetpu")
    for suffix in (".tflite", ".log", ".toml"):
        assert not stem.with_suffix(suffix).exists(), suffix


def test_num_segments_must_be_positive(cpu_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ToolError, match="--num-segments 0"):
        compile_model(cpu_model, num_segments=0)
    with pytest.raises(SystemExit) as stop:
        main(["compile", str(cpu_model), "--num-segments", "-2"])
    assert stop.value.code == 2 and "not a positive integer" in capsys.readouterr().err


# --- co-compilation -------------------------------------------------------------------

# edgetpu_compiler 16's stdout for two co-compiled models, as posted in
# google-coral/edgetpu issue #458 (paths shortened): one block per model, the shared
# remainder of the on-chip cache repeated in each.
REAL_CO_COMPILE = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Models compiled successfully in 524 ms.

Input model: temp_models/1.tflite
Input size: 1.91MiB
Output model: co-compiled/1_edgetpu.tflite
Output size: 2.52MiB
On-chip memory used for caching model parameters: 2.27MiB
On-chip memory remaining for caching model parameters: 1.07MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 57
Operation log: co-compiled/1_edgetpu.log
See the operation log file for individual operation details.

Input model: temp_models/2.tflite
Input size: 1.87MiB
Output model: co-compiled/2_edgetpu.tflite
Output size: 2.06MiB
On-chip memory used for caching model parameters: 2.00MiB
On-chip memory remaining for caching model parameters: 1.07MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 6
Operation log: co-compiled/2_edgetpu.log
See the operation log file for individual operation details.
Compilation child process completed within timeout period.
Compilation succeeded!
"""


def test_real_co_compile_report_parses_per_model() -> None:
    first, second = parse_report(REAL_CO_COMPILE)
    assert (first["input_models"], second["input_models"]) == (["temp_models/1.tflite"], ["temp_models/2.tflite"])
    assert (first["total_ops"], second["total_ops"]) == (57, 6)
    assert first["compile_ms"] == second["compile_ms"] == 524
    assert (first["operation_log"], second["operation_log"]) == ("co-compiled/1_edgetpu.log",
                                                                 "co-compiled/2_edgetpu.log")
    results = [compile_result_stub(first), compile_result_stub(second)]
    assert shared_cache(results) == {"on_chip_bytes": parse_size("2.27MiB") + parse_size("2.00MiB"),
                                     "on_chip_remaining_bytes": parse_size("1.07MiB"), "off_chip_bytes": 0}


def compile_result_stub(summary: dict):  # type: ignore[no-untyped-def]
    from tools.compile import CompileResult

    return CompileResult([], None, summary)


def _with_sidecar(src: Path, work: Path, manifest: str | None) -> Path:
    dst = work / src.name
    shutil.copyfile(src, dst)
    if manifest:
        write_manifest(get_manifest(manifest).with_(file=dst.name), dst.with_suffix(".toml"))
    return dst


def test_co_compiling_models_reports_each_and_the_shared_cache(
        fake_compiler: Path, cpu_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    movenet = _with_sidecar(shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite"),
                            cpu_model.parent, "movenet-lightning")
    # A third, larger model (6.1 MiB) no longer fits the cache after the first two.
    landmarks = _with_sidecar(shared_path("models", "mediapipe", "pose_landmark_full.tflite"), cpu_model.parent, None)
    out = tmp_path / "out"
    out.mkdir()
    results = compile_models([movenet, cpu_model, landmarks], out)
    assert [r.input_model for r in results] == [movenet, cpu_model, landmarks]
    for r, src in zip(results, (movenet, cpu_model, landmarks)):
        assert r.output_models == [out / f"{src.stem}_edgetpu.tflite"] and r.output_models[0].is_file()
        assert r.log_path == out / f"{src.stem}_edgetpu.log" and r.ops
    assert [load_manifest(r.manifest_path).cpu_twin for r in results[:2]] == ["movenet-lightning",
                                                                            "posenet-mobilenet-v1-075-481x641"]
    assert results[2].manifest_path is None  # no sidecar, no manifest
    cache = shared_cache(results)
    used = [r.summary["on_chip_bytes"] for r in results]
    assert cache["on_chip_bytes"] == sum(used) and len({r.summary["on_chip_remaining_bytes"] for r in results}) == 1
    # Filled in the order given: the first two fit whole, the third streams the rest.
    assert results[0].summary["off_chip_bytes"] == results[1].summary["off_chip_bytes"] == 0
    assert results[2].summary["off_chip_bytes"] > 0 and cache["on_chip_remaining_bytes"] == 0

    assert main(["compile", str(movenet), str(cpu_model), "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{movenet}:\n  compiled in 412 ms" in text and f"{cpu_model}:\n  compiled in 412 ms" in text
    assert "co-compiled 2 models: shared on-chip parameter cache" in text and "stream parameters" not in text


@pytest.mark.parametrize("args, match", [
    (["@model", "@model_copy"], "two models are named posenet_mobilenet_v1_075_481_641_quant.tflite"),
    (["@model", "@movenet", "--num-segments", "2"], "co-compile without it"),
])
def test_bad_co_compilations(fake_compiler: Path, cpu_model: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str], args: list[str], match: str) -> None:
    other = tmp_path / "other"
    other.mkdir()
    names = {"@model": str(cpu_model), "@model_copy": str(shutil.copy(cpu_model, other)),
             "@movenet": str(shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite"))}
    assert main(["compile", *(names.get(a, a) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err


# --- the timeout is enforced ----------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper is dead too
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_hanging_compiler_is_killed_after_the_timeout(fake_compiler: Path, cpu_model: Path,
                                                        tmp_path: Path) -> None:
    """The fake ignores its -t and SIGTERM, and so does the child it starts: the whole
    process group is killed, the run fails in one line (exit 1), nothing partial is kept."""
    pidfile = tmp_path / "child.pid"
    env = {**os.environ, "FAKE_EDGETPU_MODE": "hang", "FAKE_EDGETPU_PIDFILE": str(pidfile),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "compile", str(cpu_model), "--timeout-sec", "1"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "did not finish within 4 s and was killed" in proc.stderr
    assert "Traceback" not in proc.stderr
    child = int(pidfile.read_text())
    assert not _alive(child)
    partial = cpu_model.with_name(cpu_model.stem + "_edgetpu.tflite")
    assert not partial.exists() and not partial.with_suffix(".toml").exists()
    assert f"removed its partial {partial.name}" in proc.stderr


def test_registry_name_compiles_into_the_current_folder(fake_compiler: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "full")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["compile", "posenet-mobilenet-v1-075-481x641"]) == 0
    out = here / "posenet_mobilenet_v1_075_481_641_quant_edgetpu.tflite"
    src = resolve_model("posenet-mobilenet-v1-075-481x641").path
    log = out.with_name(out.stem + ".log").read_text()
    assert f"Input: {src}" in log  # the registry's file was compiled
    assert b"edgetpu-custom-op" in out.read_bytes()
    assert str(out) in capsys.readouterr().out
    assert not (src.parent / out.name).exists()  # nothing written next to the registry's file
