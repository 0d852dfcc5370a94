"""A user's pair of builds (CPU + Edge TPU) finds each other: beside the model, by the
layout `edgepose-tools compile` writes, or through $EDGEPOSE_MODEL_PATH; `--device auto`
falls back to the CPU twin with one line on a machine without libedgetpu (this one)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import ModelError
from edgepose.inference.engine import open_engine, plan_model
from edgepose.models.manifest import load_manifest, write_manifest
from edgepose.models.registry import get_manifest
from tests.conftest import REPO, shared_path

CORAL = ("models", "coral")
FAKE_COMPILER = REPO / "tests" / "tools" / "fake_edgetpu_compiler.py"
SQUAT = ("images", "coral_squat.bmp")


def _pair(folder: Path, cpu_twin: str | None = "mine", edgetpu_twin: str = "") -> tuple[Path, Path]:
    """Coral's MoveNet CPU and Edge TPU builds copied as a user's pair, hand-written manifests."""
    folder.mkdir(parents=True, exist_ok=True)
    cpu, tpu = folder / "mine.tflite", folder / "mine_edgetpu.tflite"
    shutil.copyfile(shared_path(*CORAL, "movenet_single_pose_lightning_ptq.tflite"), cpu)
    shutil.copyfile(shared_path(*CORAL, "movenet_single_pose_lightning_ptq_edgetpu.tflite"), tpu)
    base = get_manifest("movenet-lightning").with_(url="", sha256="", license="", description="")
    write_manifest(base.with_(name="mine", file=cpu.name, edgetpu_twin=edgetpu_twin), cpu.with_suffix(".toml"))
    write_manifest(base.with_(name="mine_edgetpu", file=tpu.name, device="edgetpu", edgetpu_twin="",
                              cpu_twin=cpu_twin or ""), tpu.with_suffix(".toml"))
    return cpu, tpu


def _run(model: Path, tmp: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[
        subprocess.CompletedProcess[str], list[dict]]:
    out = tmp / f"{model.stem}.jsonl"
    cmd = [sys.executable, "-m", "edgepose.cli.run", "--model", str(model), "--source",
           str(shared_path(*SQUAT)), "--display", "none", "--json", str(out), "--log-level", "WARNING",
           *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    return proc, records


def _no_edgetpu(tmp: Path) -> dict[str, str]:
    """This machine has no libedgetpu; make sure of it for the child (an empty lib dir first)."""
    import os

    lib = tmp / "nolib"
    lib.mkdir(exist_ok=True)
    return {**os.environ, "LD_LIBRARY_PATH": str(lib)}


def test_handmade_pair_runs_on_the_cpu_twin_with_one_line(tmp_path: Path) -> None:
    """The issue's case: Coral's real Edge TPU build given to `--device auto` without
    libedgetpu used to exit 2 ("unknown model 'mine'"); it runs its CPU twin now."""
    _cpu, tpu = _pair(tmp_path / "pair")
    proc, records = _run(tpu, tmp_path, env=_no_edgetpu(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Edge TPU" in lines[0] and "running mine on the CPU" in lines[0], lines
    assert [r["device"] for r in records] == ["cpu"]
    # the real Edge TPU flatbuffer cannot run on the CPU: these are the CPU twin's poses
    ref = open_engine(shared_path(*CORAL, "movenet_single_pose_lightning_ptq.tflite"), "cpu",
                      decoder="movenet", schema="coco17")
    from tests.conftest import load_rgb

    want = ref.infer(load_rgb(shared_path(*SQUAT)))
    got = np.array([[k["x"], k["y"]] for k in records[0]["poses"][0]["keypoints"]])
    np.testing.assert_allclose(got, want.xy[0], atol=0.5)


def test_twins_found_by_the_compile_layout_without_names(tmp_path: Path) -> None:
    """No twin named in either manifest: `<stem>_edgetpu.tflite` beside `<stem>.tflite`."""
    cpu, tpu = _pair(tmp_path, cpu_twin=None)
    plan = plan_model(cpu, "auto")
    assert plan.edgetpu is not None and plan.edgetpu.path == tpu.resolve()
    assert plan.cpu_spec() is not None and plan.cpu_spec().path == cpu.resolve()  # type: ignore[union-attr]
    back = plan_model(tpu, "cpu").cpu_spec()
    assert back is not None and back.path == cpu.resolve() and back.manifest.name == "mine"


def test_named_twin_found_through_the_model_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, tpu = _pair(tmp_path / "a")
    elsewhere = tmp_path / "models" / "cpu"
    elsewhere.mkdir(parents=True)
    for p in (cpu, cpu.with_suffix(".toml")):
        shutil.move(p, elsewhere / p.name)
    with pytest.raises(ModelError, match=r"twin 'mine' of mine_edgetpu not found.*EDGEPOSE_MODEL_PATH"):
        plan_model(tpu, "cpu")
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(tmp_path / "models"))
    spec = plan_model(tpu, "cpu").cpu_spec()
    assert spec is not None and spec.path == (elsewhere / "mine.tflite").resolve()


def test_a_twin_beside_the_model_wins_over_a_registered_name(tmp_path: Path) -> None:
    """A pair whose CPU twin has a registered model's name uses the file beside it."""
    cpu, tpu = _pair(tmp_path, cpu_twin="movenet-lightning")
    beside = tmp_path / "movenet-lightning.tflite"
    shutil.copyfile(cpu, beside)
    m = load_manifest(cpu.with_suffix(".toml"))
    write_manifest(m.with_(name="movenet-lightning", file=beside.name), beside.with_suffix(".toml"))
    spec = plan_model(tpu, "cpu").cpu_spec()
    assert spec is not None and spec.path == beside.resolve()


@pytest.fixture
def fake_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(f"#!{sys.executable}\n" + FAKE_COMPILER.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "full")
    monkeypatch.delenv("EDGETPU_COMPILER", raising=False)
    return exe


def test_pair_written_by_compile_runs_with_device_auto(tmp_path: Path, fake_compiler: Path) -> None:
    """`edgepose-tools compile` (the fake compiler) writes `<stem>_edgetpu.tflite` and its
    manifest (cpu_twin = the CPU model's name) beside the CPU model; both ways of naming
    the pair run on the CPU build here, with one line."""
    from tools.compile import compile_model

    work = tmp_path / "runs"
    work.mkdir()
    cpu = work / "sb_int8.tflite"
    shutil.copyfile(shared_path(*CORAL, "posenet_mobilenet_v1_075_481_641_quant.tflite"), cpu)
    m = get_manifest("posenet-mobilenet-v1-075-481x641").with_(
        name="sb_int8", file=cpu.name, url="", sha256="", edgetpu_twin="sb_int8_edgetpu")
    write_manifest(m, cpu.with_suffix(".toml"))  # as `quantize` writes it
    r = compile_model(cpu)
    assert r.output_models == [work / "sb_int8_edgetpu.tflite"] and r.manifest_path is not None
    env = _no_edgetpu(tmp_path)
    for given in (cpu, r.output_models[0]):
        proc, records = _run(given, tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "running sb_int8 on the CPU" in lines[0], lines
        assert [r["device"] for r in records] == ["cpu"] and records[0]["poses"]
