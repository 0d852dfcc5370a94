"""deploy/: the installer passes shellcheck; its --dry-run, on faked machines (os-release
file, `dpkg --print-architecture`), prints the runtime pair of deploy/runtimes.toml it
would install and how each download is verified, and changes nothing; its hash checks
refuse a changed asset; the systemd unit passes ``systemd-analyze verify``; the sample
config holds every setting; pygame-ce (the installer's pygame on Bookworm) runs the
renderer."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.app.config import KEYS, load_toml
from edgepose.host.runtimes import pair_for
from edgepose.models.registry import get_manifest, get_pipeline

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
INSTALL = DEPLOY / "install-pi.sh"
UNIT = DEPLOY / "edgepose.service"
# Commands that change the machine; under --dry-run none may be called.
FAKED = ("sudo", "apt-get", "curl", "gpg", "usermod", "udevadm", "systemctl", "tee", "install",
         "mkdir", "pip", "debconf-set-selections", "dpkg-deb", "sha256sum")
OS_RELEASES = {
    "bookworm": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
    "trixie": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_ID="13"\nVERSION_CODENAME="trixie"\nID=debian\n',
}


def test_install_script_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    run = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


def fake_tool(folder: Path, name: str, body: str) -> None:
    script = folder / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def dry_run(tmp_path: Path, *args: str, codename: str = "bookworm", arch: str = "arm64",
            state: Path | None = None) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The installer on a fake machine: an os-release file, a `dpkg` answering ``arch``,
    and fakes first on PATH that log any call of a changing command into calls.log."""
    fake, log = tmp_path / "fakebin", tmp_path / "calls.log"
    fake.mkdir(exist_ok=True)
    for name in FAKED:
        fake_tool(fake, name, f'echo "{name} $*" >> "{log}"\n')
    fake_tool(fake, "dpkg", f'[ "$1" = --print-architecture ] && echo {arch} && exit 0\n'
                            f'echo "dpkg $*" >> "{log}"\n')
    os_release = tmp_path / "os-release"
    os_release.write_text(OS_RELEASES.get(codename, f"VERSION_CODENAME={codename}\n"))
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "EDGEPOSE_OS_RELEASE": str(os_release),
           "EDGEPOSE_STATE_DIR": str(state or tmp_path / "state")}
    run = subprocess.run(["bash", str(INSTALL), "--dry-run", *args], capture_output=True,
                         text=True, env=env, timeout=60)
    return run, log


def system_python() -> str:
    out = subprocess.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("codename", ["bookworm", "trixie"])
def test_dry_run_prints_the_pair_and_its_verification(tmp_path: Path, codename: str) -> None:
    pair = pair_for(codename, "arm64")
    prefix = tmp_path / "prefix"
    run, log = dry_run(tmp_path, "--prefix", str(prefix), "--service", codename=codename)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert not log.exists(), log.read_text()
    assert not prefix.exists() and not (tmp_path / "state").exists()
    lib, interp = pair.libedgetpu.std, pair.interpreter
    assert f"machine: {codename}/arm64" in out
    assert f"pair: {pair.describe('std')}" in out and pair.evidence in out
    assert f"curl -fL --retry 3 --connect-timeout 30 -o {prefix}/downloads/{lib.key}.part {lib.url}" in out
    assert f"apt-get install -y --allow-downgrades {prefix}/downloads/{lib.key}" in out
    for asset in (lib, interp.asset):
        if asset.sha256:
            assert f"verify: {asset.key} must have sha256 {asset.sha256} (pinned" in out
        else:
            assert f"verify: {asset.key} has no pinned sha256" in out and "recorded in" in out
    if interp.asset.url:
        assert f"{prefix}/.venv/edgepose-constraints.txt {prefix}/downloads/{interp.asset.key}" in out
    else:
        assert f"pip download --quiet --no-deps --only-binary=:all: -d {prefix}/downloads/" in out
    assert "\n".join(pair.pip_constraints) in out
    if pair.pygame_source == "pip":
        assert "pip uninstall --yes --quiet pygame\n" in out
        assert re.search(rf"pip install --constraint \S+ {re.escape(pair.pygame_requirement)}\n", out)
    else:
        assert re.search(rf"apt-get install -y .*{pair.pygame_requirement}", out)
        assert "pip uninstall --yes --quiet pygame pygame-ce" in out
    assert "--no-binary pygame" not in out and "libsdl2-dev" not in out  # no build step
    for expected in [
        "python3-picamera2", "python3-venv", "libgbm1",
        f"venv --system-site-packages {prefix}/.venv",
        f"-m pip install --constraint {prefix}/.venv/edgepose-constraints.txt {REPO}\\[pi\\]",
        'ATTRS{idVendor}=="1a6e", ATTRS{idProduct}=="089a", MODE="0664", GROUP="plugdev"',
        'ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", MODE="0664", GROUP="plugdev"',
        "udevadm control --reload-rules",
        "systemctl enable edgepose.service",
        f"ExecStart={prefix}/.venv/bin/edgepose-run --config /etc/edgepose/edgepose.toml",
        "600 mA", "900 mA",
    ]:
        assert expected in out, expected
    default = load_toml(DEPLOY / "edgepose.toml")["model"]
    # a pipeline by its name (the fetch takes its models, fallback and twins), a model with its twin
    fetched = [default] if get_pipeline(default) else [n for n in (default, get_manifest(default).edgetpu_twin) if n]
    assert f"{prefix}/.venv/bin/edgepose models fetch {' '.join(fetched)}\n" in out
    assert "coral-edgetpu-stable" not in out and "libedgetpu1-max" not in out and "hot" not in out
    mismatch = system_python() != pair.python
    assert ("a real run would stop here" in out) is mismatch
    for group in ("video", "render", "plugdev"):
        assert re.search(rf"usermod -aG {group} |already in {group}", out), group


@pytest.mark.parametrize("codename", ["bookworm", "trixie"])
def test_dry_run_max_preseeds_the_eula_and_warns(tmp_path: Path, codename: str) -> None:
    run, log = dry_run(tmp_path, "--max", "--prefix", str(tmp_path / "p"), codename=codename)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert pair_for(codename, "arm64").libedgetpu.max.url in out and "libedgetpu1-std" not in out
    assert "echo 'libedgetpu1-max libedgetpu/accepted-eula boolean true' | debconf-set-selections" in out
    assert "WARNING" in out and "hot" in out
    assert "systemctl" not in out  # no --service
    assert not log.exists()


def test_dry_run_names_the_hash_recorded_at_first_install(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    key = pair_for("bookworm", "arm64").libedgetpu.std.key
    recorded = "ab" * 32
    (state / "assets.sha256").write_text(f"{'cd' * 32}  other.deb\n{recorded}  {key}\n")
    run, log = dry_run(tmp_path, "--prefix", str(tmp_path / "p"), state=state)
    assert run.returncode == 0, run.stderr
    assert f"verify: {key} must have sha256 {recorded} (no hash pinned; recorded in {state}" in run.stdout
    assert not log.exists()


@pytest.mark.parametrize("codename, arch, message", [
    ("bookworm", "armhf", "32-bit userland (armhf)"),
    ("trixie", "armhf", "32-bit userland (armhf)"),
    ("bookworm", "amd64", "no Edge TPU runtime pair for bookworm/amd64"),
    ("bullseye", "arm64", "no Edge TPU runtime pair for bullseye/arm64"),
])
def test_dry_run_refuses_machines_without_a_pair(tmp_path: Path, codename: str, arch: str,
                                                 message: str) -> None:
    run, log = dry_run(tmp_path, codename=codename, arch=arch)
    assert run.returncode == 2 and not log.exists()
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("install-pi.sh: ") and message in line
    if arch == "armhf":
        assert "flash the 64-bit image" in line
    assert "apt-get" not in run.stdout


@pytest.mark.parametrize("args, message", [
    (["--turbo"], "unknown option '--turbo'"),
    (["--user", "no-such-user-xyz"], "user 'no-such-user-xyz' does not exist"),
])
def test_install_script_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    run, log = dry_run(tmp_path, *args)
    assert run.returncode == 2 and message in run.stderr and not log.exists()


def verify(tmp_path: Path, file: Path, key: str, pinned: str = "",
           accept: bool = False) -> subprocess.CompletedProcess[str]:
    """The installer's own verify_asset (the script sourced, not run), as a real run does
    it, with its record under ``tmp_path/state``; `sudo` passes through when not root."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    fake_tool(fake, "sudo", 'exec "$@"\n')
    script = (f'source "{INSTALL}"; ACCEPT_CHANGED={int(accept)}; '
              f'verify_asset "{file}" "{key}" "{pinned}"')
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
           "EDGEPOSE_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=30)


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_unpinned_asset_is_recorded_and_a_changed_one_refused(tmp_path: Path) -> None:
    deb = tmp_path / "libedgetpu1-std_16.0tf2.17.1-1.bookworm_arm64.deb"
    deb.write_bytes(b"first upload")
    first = verify(tmp_path, deb, deb.name)
    assert first.returncode == 0, first.stderr
    assert f"sha256 {sha256(b'first upload')}  {deb.name}" in first.stdout
    record = tmp_path / "state" / "assets.sha256"
    assert record.read_text() == f"{sha256(b'first upload')}  {deb.name}\n"
    again = verify(tmp_path, deb, deb.name)
    assert again.returncode == 0 and "as recorded at its first install" in again.stdout

    deb.write_bytes(b"replaced upload")
    changed = verify(tmp_path, deb, deb.name)
    assert changed.returncode == 1
    [line] = changed.stderr.strip().splitlines()
    assert f"{deb.name} changed since its first install" in line and "--accept-changed-assets" in line
    assert sha256(b"first upload") in record.read_text()  # the record is kept

    accepted = verify(tmp_path, deb, deb.name, accept=True)
    assert accepted.returncode == 0, accepted.stderr
    assert record.read_text() == f"{sha256(b'replaced upload')}  {deb.name}\n"


def test_pinned_hash_mismatch_is_refused(tmp_path: Path) -> None:
    whl = tmp_path / "ai_edge_litert-2.2.0-cp313-cp313-manylinux_2_27_aarch64.whl"
    whl.write_bytes(b"wheel")
    good = verify(tmp_path, whl, "ai-edge-litert==2.2.0", pinned=sha256(b"wheel"))
    assert good.returncode == 0 and "(pinned)" in good.stdout
    bad = verify(tmp_path, whl, "ai-edge-litert==2.2.0", pinned=sha256(b"other"), accept=True)
    assert bad.returncode == 1
    [line] = bad.stderr.strip().splitlines()
    assert f"has sha256 {sha256(b'wheel')}, not the {sha256(b'other')} pinned" in line
    assert not (tmp_path / "state").exists()  # pinned assets are never recorded


def test_pygame_ce_runs_the_renderer() -> None:
    """The installer's pygame on Bookworm is pygame-ce (it imports as `pygame`): the
    renderer's tests pass on it. scripts/setup.sh puts it in .venv/pygame-ce."""
    side = REPO / ".venv" / "pygame-ce"
    if not (side / "pygame").is_dir():
        pytest.skip(f"pygame-ce not in {side}: run scripts/setup.sh")
    env = {**os.environ, "PYTHONPATH": str(side)}
    probe = subprocess.run([sys.executable, "-c", "import pygame; print(getattr(pygame, 'IS_CE', 0))"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert probe.stdout.strip().endswith("1"), probe.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(REPO / "tests" / "edgepose" / "render" / "test_render.py")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    assert re.search(r"\d+ passed", run.stdout) and " failed" not in run.stdout


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


def systemd_verify(unit: Path) -> subprocess.CompletedProcess[str]:
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
    run = systemd_verify(good)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr
    broken = tmp_path / "broken" / "edgepose.service"
    broken.parent.mkdir()
    broken.write_text(text.replace("/home/pi/edgepose/.venv/bin/edgepose-run", str(tmp_path / "nope")))
    assert systemd_verify(broken).returncode != 0


def test_sample_config_has_every_setting(tmp_path: Path) -> None:
    """Every key appears (commented examples included) and type-checks with the
    pipeline's own TOML loader, commented or not."""
    text = (DEPLOY / "edgepose.toml").read_text()
    active = load_toml(DEPLOY / "edgepose.toml")
    uncommented = tmp_path / "all.toml"
    uncommented.write_text("\n".join(line[2:] if re.match(r"# [a-z_]+ = ", line) else line
                                     for line in text.splitlines()))
    assert set(active) < set(load_toml(uncommented)) == set(KEYS)
