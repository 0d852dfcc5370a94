"""``edgepose doctor`` on fake sysfs / /dev / device trees, fake ``dpkg``/``vcgencmd`` tools
on PATH and the fake libedgetpu (tests/fakes), which the real interpreter loads in the
doctor's probe child; the models check runs against the real manifests and ../shared models."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgepose.cli.main import main
from edgepose.core.errors import ConfigError
from edgepose.host.display import check_pygame, sdl_video_drivers
from edgepose.host.doctor import (
    check_camera,
    check_display,
    check_edgetpu_runtime,
    check_models,
    check_runtime_pair,
    check_tpu_devices,
    find_usb_tpus,
    run_doctor,
)
from edgepose.host.power import check_power, decode_throttled
from edgepose.host.runtimes import installed_interpreter
from edgepose.inference.tpuprobe import describe_exit
from tests.conftest import shared_path
from tests.fakes.libedgetpu import FakeLibedgetpu

EDGETPU_MODEL = "movenet_single_pose_lightning_ptq_edgetpu.tflite"


def add_usb(sysfs: Path, name: str, vendor: str, product: str, speed: str) -> None:
    d = sysfs / "bus" / "usb" / "devices" / name
    d.mkdir(parents=True)
    (d / "idVendor").write_text(vendor + "\n")
    (d / "idProduct").write_text(product + "\n")
    (d / "speed").write_text(speed + "\n")


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path]:
    """An empty sysfs with one unrelated USB device (a keyboard), and an empty /dev."""
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    add_usb(sysfs, "1-1.2", "046d", "c31c", "12")
    dev.mkdir()
    return sysfs, dev


def doctor(machine: tuple[Path, Path], device: str = "edgetpu", **kw: Any) -> Any:
    video = str(shared_path("videos", "sports2d_demo.mp4"))
    kw = {"source": video, "display": "none", **kw}
    return run_doctor(device=device, sysfs_root=machine[0], dev_root=machine[1], environ={}, **kw)


def tool(folder: Path, name: str, body: str) -> None:
    """A fake command line tool (sh script) in ``folder``."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fakebin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on PATH for fake dpkg / dpkg-query / vcgencmd."""
    d = tmp_path / "fakebin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    return d


def named(report: Any, name: str) -> list[Any]:
    return [c for c in report.checks if c.name == name]


def test_usb3_accelerator_is_ok(machine: tuple[Path, Path]) -> None:
    add_usb(machine[0], "2-1", "18d1", "9302", "5000")
    [tpu] = check_tpu_devices("edgetpu", None, *machine)
    assert tpu.status == "ok" and "18d1:9302" in tpu.detail and "5000" in tpu.detail


def test_usb2_link_warns(machine: tuple[Path, Path]) -> None:
    add_usb(machine[0], "1-1.3", "1a6e", "089a", "480")
    [dev] = find_usb_tpus(machine[0])
    assert (dev.vendor, dev.product, dev.speed) == ("1a6e", "089a", "480")
    [tpu] = check_tpu_devices("edgetpu", None, *machine)
    assert tpu.status == "warn" and "3x slower" in tpu.hint and "USB 3" in tpu.hint
    assert not tpu.blocking  # slow, but it runs


def test_pcie_accelerator_is_found(machine: tuple[Path, Path]) -> None:
    (machine[1] / "apex_0").touch()
    [tpu] = check_tpu_devices("edgetpu", "pci", *machine)
    assert tpu.status == "ok" and "apex_0" in tpu.detail


@pytest.mark.parametrize("device, status, can_start", [
    ("edgetpu", "fail", False),
    ("usb:0", "fail", False),
    ("auto", "warn", True),
    ("cpu", "ok", True),
])
def test_no_accelerator(machine: tuple[Path, Path], device: str, status: str, can_start: bool) -> None:
    from edgepose.inference.engine import parse_device

    [tpu] = check_tpu_devices(*parse_device(device), *machine)
    assert tpu.status == status
    assert tpu.blocking is not can_start
    if not can_start:
        assert "no Edge TPU" in tpu.detail


def edgetpu_model() -> Path:
    return shared_path("models", "coral", EDGETPU_MODEL)


def interpreter_text() -> str:
    found = installed_interpreter()
    assert found is not None
    return f"{found[0]} {found[1]}"


@pytest.mark.parametrize("mode, device, status, words", [
    ("nodevice", "edgetpu", "fail", ["found no Edge TPU", "udev", "USB 3"]),
    ("nodevice", "auto", "warn", ["found no Edge TPU", "will use the CPU"]),
    ("inert", "edgetpu", "fail", ["did not run with the Edge TPU delegate", "edgetpu-custom-op"]),
    ("inert", "usb:0", "fail", ["edgetpu-custom-op"]),
    ("inert", "auto", "warn", ["edgetpu-custom-op", "will use the CPU"]),
])
def test_probe_errors_the_runtime_reports(fake_libedgetpu: FakeLibedgetpu, mode: str, device: str,
                                          status: str, words: list[str]) -> None:
    """The probe child loads the fake through LD_LIBRARY_PATH: no accelerator (NULL
    delegate), or a delegate that leaves edgetpu-custom-op unresolved."""
    from edgepose.inference.engine import parse_device

    edgetpu_model()
    check = check_edgetpu_runtime(*parse_device(device), "movenet-lightning", 60, env=fake_libedgetpu.env(mode))
    assert check.status == status and check.blocking is (status == "fail") and "\n" not in check.detail
    for w in words:
        assert w in check.detail


def test_probe_without_libedgetpu_names_the_installer() -> None:
    import ctypes.util

    if ctypes.util.find_library("edgetpu"):
        pytest.skip("a real libedgetpu is installed here")
    edgetpu_model()
    check = check_edgetpu_runtime("edgetpu", None, None, 60)
    assert check.status == "fail" and "could not be loaded" in check.detail
    assert "deploy/install-pi.sh" in check.detail


@pytest.mark.parametrize("mode, what", [
    ("segv", "killed by SIGSEGV"),
    ("abort", "killed by SIGABRT"),
    ("hang", "no answer within 3 s (hung)"),
])
def test_doctor_names_a_crashing_runtime_and_exits_1(fake_libedgetpu: FakeLibedgetpu, tmp_path: Path,
                                                     mode: str, what: str) -> None:
    """`edgepose doctor` itself survives a libedgetpu that segfaults, aborts or hangs in
    tflite_plugin_create_delegate: one failed check naming the pairing, exit 1. Even with
    --device auto: the run would die the same way."""
    edgetpu_model()
    video = str(shared_path("videos", "sports2d_demo.mp4"))
    cmd = [sys.executable, "-m", "edgepose.cli.main", "doctor", "--device", "auto", "--display", "none",
           "--source", video, "--probe-timeout", "3", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=fake_libedgetpu.env(mode), timeout=120)
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    [lib] = [c for c in report["checks"] if c["name"] == "libedgetpu"]
    assert lib["status"] == "fail" and lib["blocking"]
    assert lib["detail"].startswith(f"runtime pairing broken: libedgetpu unknown with {interpreter_text()}")
    assert what in lib["detail"] and "runtime pairing" in lib["hint"]
    assert report["can_start"] is False and any("runtime pairing broken" in r for r in report["reasons"])


def test_probe_is_skipped_for_the_cpu(fake_libedgetpu: FakeLibedgetpu) -> None:
    check = check_edgetpu_runtime("cpu", None, None, 3, env=fake_libedgetpu.env("segv"))
    assert check.status == "ok" and "not probed" in check.detail


def test_probe_needs_the_model_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(tmp_path))
    check = check_edgetpu_runtime("edgetpu", None, "movenet-lightning", 3)
    assert check.status == "warn" and "movenet-lightning-edgetpu is not downloaded" in check.detail
    assert check.hint == "edgepose models fetch movenet-lightning-edgetpu"


@pytest.mark.parametrize("rc, timed_out, crashed, words", [
    (-11, False, True, ["SIGSEGV", "runtime pairing"]),
    (139, False, True, ["SIGSEGV"]),  # a shell's 128 + 11
    (-6, False, True, ["SIGABRT", "unplugged", "power"]),
    (-9, False, True, ["SIGKILL", "out-of-memory"]),
    (None, True, True, ["no answer within 2 s", "unplugged", "power", "runtime pairing"]),
    (0, False, False, ["exited normally"]),
    (3, False, False, ["exited with code 3"]),
])
def test_describe_exit(rc: int | None, timed_out: bool, crashed: bool, words: list[str]) -> None:
    e = describe_exit(rc, timed_out=timed_out, timeout_s=2)
    assert e.crashed is crashed and "\n" not in e.line
    for w in words:
        assert w in e.line


def pair_machine(fakebin: Path, tmp_path: Path, codename: str, arch: str, lib: str | None) -> Path:
    tool(fakebin, "dpkg", f"echo {arch}\n")
    listing = f'printf "{lib} ii \\n"\n' if lib else "exit 1\n"
    tool(fakebin, "dpkg-query", listing)
    osr = tmp_path / "os-release"
    osr.write_text(f"VERSION_CODENAME={codename}\n")
    return osr


def test_pair_check_against_the_data_file(fakebin: Path, tmp_path: Path) -> None:
    """This venv's interpreter is not the trixie pair's pinned 2.2.0 (or is): the check says so."""
    osr = pair_machine(fakebin, tmp_path, "trixie", "arm64", "libedgetpu1-std 16.0tf2.19.1-1")
    module, version = installed_interpreter() or ("", "")
    check = check_runtime_pair(osr)
    if (module, version) == ("ai_edge_litert", "2.2.0"):
        assert check.status == "ok" and check.detail.startswith("matching")
    else:
        assert check.status == "warn" and f"{module} {version} (pair: ai_edge_litert 2.2.0)" in check.detail
        assert "deploy/install-pi.sh" in check.hint


def test_pair_check_matching(fakebin: Path, tmp_path: Path) -> None:
    """A pairs file whose trixie pair is this venv's interpreter and the fake dpkg's libedgetpu."""
    from tests.edgepose.host.test_runtimes import GOOD

    module, version = installed_interpreter() or ("", "")
    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}[module]
    pairs = tmp_path / "pairs.toml"
    pairs.write_text(GOOD.replace('"ai-edge-litert"', f'"{dist}"').replace('"ai_edge_litert"', f'"{module}"')
                     .replace("2.2.0", version))
    osr = pair_machine(fakebin, tmp_path, "trixie", "arm64", "libedgetpu1-max 16.0tf2.19.1-1")
    check = check_runtime_pair(osr, pairs)
    assert check.status == "ok" and check.detail.startswith(
        f"matching: libedgetpu1-max 16.0tf2.19.1-1 with {module} {version}: the trixie/arm64 pair")


def test_pair_check_on_32_bit_userland(fakebin: Path, tmp_path: Path) -> None:
    osr = pair_machine(fakebin, tmp_path, "bookworm", "armhf", None)
    check = check_runtime_pair(osr)
    assert check.status == "ok" and check.detail.startswith("unknown") and "flash the 64-bit image" in check.detail


def sdl_has_kmsdrm_bytes() -> bool:
    """Independent of SDL_GetVideoDriver: is KMSDRM's init code in the loaded SDL binary?"""
    with open("/proc/self/maps") as fh:
        libs = {line.split()[-1] for line in fh if "libSDL2-2" in line or "libSDL2.so" in line}
    return any(b"KMSDRM_VideoInit" in Path(lib).read_bytes() for lib in libs if "image" not in lib
               and "mixer" not in lib and "ttf" not in lib)


@pytest.mark.parametrize("display", ["auto", "tv", "none"])
def test_pygame_check_reads_the_sdl_drivers(display: str) -> None:
    pytest.importorskip("pygame")
    check = check_pygame(display)
    drivers = sdl_video_drivers()
    assert drivers is not None and "dummy" in drivers  # the tests' own driver
    kms = sdl_has_kmsdrm_bytes()
    assert any(d.lower() == "kmsdrm" for d in drivers) is kms
    assert ("kmsdrm: yes" in check.detail) is kms
    if kms or display == "none":
        assert check.status == "ok"
    else:
        assert check.status == ("fail" if display == "tv" else "warn") and "pygame-ce" in check.hint


def test_pygame_ce_has_kmsdrm() -> None:
    """The pygame the installer picks on Bookworm (scripts/setup.sh puts it in .venv/pygame-ce)."""
    side = Path(__file__).resolve().parents[3] / ".venv" / "pygame-ce"
    if not (side / "pygame").is_dir():
        pytest.skip(f"pygame-ce not in {side}: run scripts/setup.sh")
    code = ("from edgepose.host.display import check_pygame; c = check_pygame('tv'); "
            "print(c.status); print(c.detail)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(side)})
    status, detail = run.stdout.splitlines()[:2]
    assert status == "ok" and detail.startswith("pygame-ce ") and "kmsdrm: yes" in detail, run.stderr


@pytest.mark.parametrize("value, flags", [
    (0x0, []),
    (0x50005, ["under-voltage now", "throttled now", "under-voltage has occurred since boot",
               "throttling has occurred"]),
    (0x80008, ["soft temperature limit now", "soft temperature limit has occurred"]),
    (1 << 30, ["bit 30"]),
])
def test_decode_throttled(value: int, flags: list[str]) -> None:
    assert decode_throttled(value) == flags


def pi5_tree(root: Path, supply: int | None, enable: int | None) -> Path:
    (root / "chosen" / "power").mkdir(parents=True)
    (root / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    for name, value in (("max_current", supply), ("usb_max_current_enable", enable)):
        if value is not None:
            (root / "chosen" / "power" / name).write_bytes(value.to_bytes(4, "big"))
    return root


@pytest.mark.parametrize("throttled, status, words", [
    ("throttled=0x0", "ok", ["no under-voltage"]),
    ("throttled=0x50005", "warn", ["under-voltage now", "throttling has occurred"]),
])
def test_power_check_reads_vcgencmd(fakebin: Path, tmp_path: Path, throttled: str, status: str,
                                    words: list[str]) -> None:
    tool(fakebin, "vcgencmd", f'[ "$1" = get_throttled ] && echo {throttled}\n')
    [power] = check_power(tmp_path / "no-device-tree")
    assert power.status == status
    for w in words:
        assert w in power.detail
    if status == "warn":
        assert "900 mA" in power.hint


def test_power_check_without_vcgencmd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no vcgencmd anywhere
    [power] = check_power(tmp_path)
    assert power.status == "ok" and "not checked" in power.detail


@pytest.mark.parametrize("supply, enable, config, status, limit", [
    (3000, 0, "", "warn", "600 mA"),
    (5000, 1, "", "ok", "1600 mA"),
    (3000, None, "usb_max_current_enable=1", "ok", "1600 mA"),  # read through vcgencmd get_config
    (3000, None, "usb_max_current_enable=0", "warn", "600 mA"),
])
def test_pi5_usb_current_limit(fakebin: Path, tmp_path: Path, supply: int, enable: int | None,
                               config: str, status: str, limit: str) -> None:
    tool(fakebin, "vcgencmd", '[ "$1" = get_throttled ] && echo throttled=0x0 && exit 0\n'
                              f'[ "$1" = get_config ] && echo {config}\n')
    power, usb = check_power(pi5_tree(tmp_path / "dt", supply, enable))
    assert power.status == "ok" and usb.status == status
    assert f"supply {supply} mA" in usb.detail and f"limited to {limit}" in usb.detail
    if status == "warn":
        assert "900 mA" in usb.detail and "5 V 5 A" in usb.hint


def test_no_usb_check_on_a_pi_4(fakebin: Path, tmp_path: Path) -> None:
    tool(fakebin, "vcgencmd", "echo throttled=0x0\n")
    dt = tmp_path / "dt"
    dt.mkdir()
    (dt / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    assert [c.name for c in check_power(dt)] == ["power"]


@pytest.mark.parametrize("source, nodes, status", [
    ("0", ["video0"], "ok"),
    ("/dev/video2", ["video0"], "fail"),
    ("auto", ["video0"], "ok"),
    ("rtsp://127.0.0.1:8554/cam", [], "ok"),
    ("/no/such/video.mp4", [], "fail"),
])
def test_camera_check(tmp_path: Path, source: str, nodes: list[str], status: str) -> None:
    for n in nodes:
        (tmp_path / n).touch()
    check = check_camera(source, tmp_path, list_cameras=lambda: None)
    assert check.status == status
    assert check.blocking is (status == "fail")


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None,
                    reason="picamera2 is installed here: its missing-module hint cannot show")
@pytest.mark.parametrize("source", ["picamera", "auto"])
def test_camera_without_picamera2_names_the_apt_package(tmp_path: Path, source: str) -> None:
    check = check_camera(source, tmp_path, list_cameras=lambda: None)
    assert check.status == "fail" and "python3-picamera2" in check.hint
    assert "--system-site-packages" in check.hint


@pytest.mark.parametrize("display, env, cards, status, driver", [
    ("auto", {}, False, "warn", "kmsdrm"),
    ("tv", {}, False, "fail", "kmsdrm"),
    ("tv", {}, True, "ok", "kmsdrm"),
    ("auto", {"DISPLAY": ":0"}, False, "ok", "x11"),
    ("auto", {"SDL_VIDEODRIVER": "dummy"}, False, "ok", "dummy"),
    ("none", {}, False, "ok", "headless"),
])
def test_display_check(tmp_path: Path, display: str, env: dict[str, str], cards: bool,
                       status: str, driver: str) -> None:
    pytest.importorskip("pygame")
    if cards:
        (tmp_path / "dri").mkdir()
        (tmp_path / "dri" / "card0").touch()
    check = check_display(display, env, tmp_path)
    assert check.status == status and driver in check.detail
    if status != "ok":
        assert "video,render" in check.hint


def test_models_check_finds_shared_models() -> None:
    shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")
    models, model = check_models("movenet-lightning")
    assert models.status == "ok" and "movenet-lightning" in models.detail.split(";")[0]
    assert model.status == "ok" and model.detail.endswith("movenet_single_pose_lightning_ptq.tflite")


def test_a_missing_landmark_with_a_fallback_is_a_warning_that_names_it(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The default's Thunder not downloaded: a warning (it downloads at start, and runs
    Lightning in its place offline), not a blocking failure."""
    models = tmp_path / "models"
    models.mkdir()  # Lightning and PoseNet only, as on an offline Pi without Thunder
    for name in ("movenet_single_pose_lightning_ptq.tflite", "posenet_mobilenet_v1_075_481_641_quant.tflite"):
        (models / name).symlink_to(shared_path("models", "coral", name))
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(models))
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(tmp_path / "cache"))
    _, proposer, landmark = check_models("movenet-multipose")
    assert proposer.status == "ok" and landmark.status == "warn" and not landmark.blocking
    assert "movenet-thunder" in landmark.detail
    assert landmark.hint.endswith("offline, movenet-multipose runs movenet-lightning in its place")


def test_unknown_model_blocks_the_run() -> None:
    [_, model] = check_models("no-such-model")
    assert model.status == "fail" and model.blocking and "no-such-model" in model.detail


@pytest.mark.parametrize("kwargs, match", [
    ({"device": "gpu"}, "unknown device 'gpu'"),
    ({"display": "hdmi"}, "display 'hdmi'"),
])
def test_run_doctor_bad_input(machine: tuple[Path, Path], kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        doctor(machine, **kwargs)


def test_cli_json_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    video = str(shared_path("videos", "sports2d_demo.mp4"))
    base = ["doctor", "--device", "cpu", "--display", "none", "--json"]
    assert main([*base, "--source", video]) == 0
    ok = json.loads(capsys.readouterr().out)
    assert ok["can_start"] is True and {c["name"] for c in ok["checks"]} >= {
        "platform", "runtime", "pair", "libedgetpu", "edgetpu", "camera", "display", "pygame", "power",
        "models"}
    assert main([*base, "--source", "/no/such/video.mp4"]) == 1
    bad = json.loads(capsys.readouterr().out)
    assert bad["can_start"] is False and "/no/such/video.mp4" in bad["reasons"][0]
    assert main(["doctor", "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err
    for bad in ("0", "nan", "inf", "-5", "1e308"):
        assert main([*base, "--probe-timeout", bad]) == 2
        err = capsys.readouterr().err
        assert f"probe timeout {float(bad):g} s is out of range; pass --probe-timeout 1..3600" in err
        assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_reads_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "edgepose.toml"
    cfg.write_text('device = "cpu"\ndisplay = "none"\nsource = "/no/such/clip.mp4"\n')
    assert main(["doctor", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "cannot start" in out and "/no/such/clip.mp4" in out


def test_camera_with_broken_picamera2_names_the_simplejpeg_fix(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """picamera2 present but failing to import (Debian's numpy-1 simplejpeg in a numpy-2 venv)."""
    pkg = tmp_path / "site" / "picamera2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ValueError('numpy.dtype size changed')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    check = check_camera("picamera", tmp_path, list_cameras=lambda: "0 : imx708 [4608x2592]")
    assert check.status == "fail" and check.blocking
    assert "missing or broken" in check.detail and "pip install --force-reinstall simplejpeg" in check.hint


@pytest.mark.parametrize("content, verdict", [(b"this is not a video\n" * 50, "fail"), (None, "ok")])
def test_a_file_source_is_opened_not_just_found(tmp_path: Path, content: bytes | None, verdict: str) -> None:
    """`doctor --source text.mp4` must not say the run can start: the file is opened and
    its first frame read, as the run would (also through a file:// URL)."""
    from edgepose.host.doctor import check_camera
    from tests.conftest import shared_path

    if content is None:
        path = shared_path("videos", "mmpose_demo.mp4")
    else:
        path = tmp_path / "text.mp4"
        path.write_bytes(content)
    for spec in (str(path), path.as_uri()):
        check = check_camera(spec, tmp_path)
        assert check.status == verdict, check
        assert check.blocking == (verdict == "fail")
    if verdict == "ok":
        assert "960x540" in check.detail


def test_configured_outputs_are_listed_and_probed(tmp_path: Path) -> None:
    """An unwritable file output blocks the run; an MQTT broker nobody runs only warns
    (the run reconnects); a non-loopback --serve without a token fails."""
    import socket

    from edgepose.host.doctor import check_outputs

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    good, bad = str(tmp_path / "poses.jsonl"), str(tmp_path / "none" / "poses.jsonl")
    checks = check_outputs([good, bad, f"mqtt://127.0.0.1:{port}/edgepose"], "0.0.0.0:8089", None)
    assert [c.status for c in checks] == ["ok", "fail", "warn", "fail"], checks
    assert [c.blocking for c in checks] == [True, True, False, True]
    assert "does not exist" in checks[1].detail and "token" in checks[3].detail
    assert not (tmp_path / "poses.jsonl").exists()  # probing writes nothing


def test_the_default_pipeline_is_probed_with_its_landmark_model() -> None:
    """With its landmark's Edge TPU build (Thunder's) when downloaded, else with its
    fallback's (Lightning's, here: Thunder is not in ../shared)."""
    from edgepose.host.doctor import edgetpu_model as probe_model
    from edgepose.models.registry import find_model_file, get_manifest

    edgetpu_model()
    thunder = find_model_file(get_manifest("movenet-thunder-edgetpu"))
    for model in (None, "movenet-multipose"):  # the run's default is the top-down pipeline
        name, path = probe_model(model)
        if thunder is not None:
            assert (name, path) == ("movenet-thunder-edgetpu", thunder)
        else:
            assert name == "movenet-lightning-edgetpu" and path is not None and path.name == EDGETPU_MODEL
