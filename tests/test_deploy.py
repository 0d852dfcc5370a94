"""deploy/: the installer passes shellcheck and its --dry-run changes nothing, the systemd
unit passes ``systemd-analyze verify``, and the sample config holds every setting."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.config import KEYS, load_toml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
INSTALL = DEPLOY / "install-pi.sh"
UNIT = DEPLOY / "edgepose.service"
# Commands the installer would run for real; under --dry-run none may be called.
FAKED = ("sudo", "apt-get", "curl", "gpg", "usermod", "udevadm", "systemctl", "tee",
         "install", "python3", "mkdir", "pip")


def test_install_script_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    run = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


def dry_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the installer with fakes first on PATH that log any call into calls.log."""
    fake, log = tmp_path / "fakebin", tmp_path / "calls.log"
    fake.mkdir()
    for name in FAKED:
        script = fake / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", str(INSTALL), "--dry-run", *args], capture_output=True,
                         text=True, env=env, timeout=60)
    return run, log


def test_dry_run_prints_every_step_and_runs_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    run, log = dry_run(tmp_path, "--prefix", str(prefix), "--service")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert not log.exists(), log.read_text()
    assert not prefix.exists()
    for expected in [
        "https://packages.cloud.google.com/apt coral-edgetpu-stable main",
        "signed-by=/etc/apt/keyrings/coral-edgetpu.gpg",
        "apt-get update",
        "libedgetpu1-std", "python3-picamera2", "python3-venv", "libsdl2-dev",
        f"venv --system-site-packages {prefix}/.venv",
        "--no-binary pygame",
        f"{prefix}/.venv/bin/python -m pip install {DEPLOY.parent}\\[pi\\]",
        'ATTRS{idVendor}=="1a6e", ATTRS{idProduct}=="089a", MODE="0664", GROUP="plugdev"',
        'ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", MODE="0664", GROUP="plugdev"',
        "udevadm control --reload-rules",
        "systemctl enable edgepose.service",
        f"ExecStart={prefix}/.venv/bin/edgepose-run --config /etc/edgepose/edgepose.toml",
    ]:
        assert expected in out, expected
    assert "libedgetpu1-max" not in out and "hot" not in out
    for group in ("video", "render", "plugdev"):
        assert re.search(rf"usermod -aG {group} |already in {group}", out), group


def test_dry_run_max_warns_about_heat(tmp_path: Path) -> None:
    run, log = dry_run(tmp_path, "--max", "--prefix", str(tmp_path / "p"))
    assert run.returncode == 0, run.stderr
    assert "libedgetpu1-max" in run.stdout and "libedgetpu1-std" not in run.stdout
    assert "WARNING" in run.stdout and "hot" in run.stdout
    assert "systemctl" not in run.stdout  # no --service
    assert not log.exists()


@pytest.mark.parametrize("args, message", [
    (["--turbo"], "unknown option '--turbo'"),
    (["--user", "no-such-user-xyz"], "user 'no-such-user-xyz' does not exist"),
])
def test_install_script_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    run, log = dry_run(tmp_path, *args)
    assert run.returncode == 2 and message in run.stderr and not log.exists()


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_unit_settings() -> None:
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"] and s["WatchdogSec"] == ["10"]
    assert s["User"] != ["root"] and set(s["SupplementaryGroups"][0].split()) == {"video", "render", "plugdev"}
    assert "SDL_VIDEODRIVER=kmsdrm" in s["Environment"]
    assert s["ExecStart"][0].endswith("/.venv/bin/edgepose-run --config /etc/edgepose/edgepose.toml")


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit names /home/pi/edgepose/.venv/bin/edgepose-run, which verify requires to
    exist; the copy checked here points ExecStart at this venv's real edgepose-run."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (no systemd on this machine)")
    exe = Path(sys.executable).parent / "edgepose-run"
    if not exe.exists():
        pytest.skip(f"{exe} not found: pip install -e . first")
    text = UNIT.read_text()
    good = tmp_path / "edgepose.service"
    good.write_text(text.replace("/home/pi/edgepose/.venv/bin/edgepose-run", str(exe)))
    run = verify(good)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
    broken = tmp_path / "broken" / "edgepose.service"
    broken.parent.mkdir()
    broken.write_text(text.replace("/home/pi/edgepose/.venv/bin/edgepose-run", str(tmp_path / "nope")))
    assert verify(broken).returncode != 0


def test_sample_config_has_every_setting(tmp_path: Path) -> None:
    """Every key appears (commented examples included) and type-checks with the
    pipeline's own TOML loader, commented or not."""
    text = (DEPLOY / "edgepose.toml").read_text()
    active = load_toml(DEPLOY / "edgepose.toml")
    uncommented = tmp_path / "all.toml"
    uncommented.write_text("\n".join(line[2:] if re.match(r"# [a-z_]+ = ", line) else line
                                     for line in text.splitlines()))
    assert set(active) < set(load_toml(uncommented)) == set(KEYS)
