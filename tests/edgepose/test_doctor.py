"""``edgepose doctor`` on fake sysfs / /dev trees and fake delegate loaders (the hardware
boundary); the models check runs against the real manifests and ../shared models."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from edgepose.cli.main import main
from edgepose.doctor import check_camera, check_display, check_models, find_usb_tpus, run_doctor
from edgepose.errors import ConfigError
from tests.conftest import shared_path


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


def loader_ok(lib: str, options: dict[str, Any]) -> object:
    return object()


def loader_raising(exc: Exception) -> Any:
    def load(lib: str, options: dict[str, Any]) -> object:
        raise exc
    return load


def doctor(machine: tuple[Path, Path], device: str = "edgetpu", loader: Any = loader_ok,
           **kw: Any) -> Any:
    video = str(shared_path("videos", "sports2d_demo.mp4"))
    kw = {"source": video, "display": "none", **kw}
    return run_doctor(device=device, sysfs_root=machine[0], dev_root=machine[1],
                      delegate_loader=loader, environ={}, **kw)


def named(report: Any, name: str) -> list[Any]:
    return [c for c in report.checks if c.name == name]


def test_usb3_accelerator_is_ok(machine: tuple[Path, Path]) -> None:
    add_usb(machine[0], "2-1", "18d1", "9302", "5000")
    report = doctor(machine)
    [tpu] = named(report, "edgetpu")
    assert tpu.status == "ok" and "18d1:9302" in tpu.detail and "5000" in tpu.detail
    assert named(report, "libedgetpu")[0].status == "ok"
    assert report.can_start


def test_usb2_link_warns(machine: tuple[Path, Path]) -> None:
    add_usb(machine[0], "1-1.3", "1a6e", "089a", "480")
    [dev] = find_usb_tpus(machine[0])
    assert (dev.vendor, dev.product, dev.speed) == ("1a6e", "089a", "480")
    report = doctor(machine)
    [tpu] = named(report, "edgetpu")
    assert tpu.status == "warn" and "3x slower" in tpu.hint and "USB 3" in tpu.hint
    assert report.can_start  # slow, but it runs


def test_pcie_accelerator_is_found(machine: tuple[Path, Path]) -> None:
    (machine[1] / "apex_0").touch()
    [tpu] = named(doctor(machine, device="pci"), "edgetpu")
    assert tpu.status == "ok" and "apex_0" in tpu.detail


@pytest.mark.parametrize("device, status, can_start", [
    ("edgetpu", "fail", False),
    ("usb:0", "fail", False),
    ("auto", "warn", True),
    ("cpu", "ok", True),
])
def test_no_accelerator(machine: tuple[Path, Path], device: str, status: str, can_start: bool) -> None:
    report = doctor(machine, device=device)
    [tpu] = named(report, "edgetpu")
    assert tpu.status == status
    assert report.can_start is can_start
    if not can_start:
        assert any("no Edge TPU" in r for r in report.reasons)


@pytest.mark.parametrize("exc, device, status, words", [
    (OSError("libedgetpu.so.1: cannot open shared object file"), "edgetpu", "fail",
     ["libedgetpu1-std", "Coral's apt repo"]),
    (ValueError("Failed to load delegate from libedgetpu.so.1"), "edgetpu", "fail",
     ["found no", "udev", "USB 3"]),
    (OSError("libedgetpu.so.1: cannot open shared object file"), "auto", "warn",
     ["libedgetpu1-std", "will use the CPU"]),
    (ValueError("Failed to load delegate"), "cpu", "warn", ["not needed for --device cpu"]),
])
def test_libedgetpu_failures(machine: tuple[Path, Path], exc: Exception, device: str,
                             status: str, words: list[str]) -> None:
    add_usb(machine[0], "2-1", "18d1", "9302", "5000")
    report = doctor(machine, device=device, loader=loader_raising(exc))
    [lib] = named(report, "libedgetpu")
    assert lib.status == status and "\n" not in lib.detail
    for w in words:
        assert w in lib.detail
    assert report.can_start is (status != "fail")


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
        "platform", "runtime", "libedgetpu", "edgetpu", "camera", "display", "models"}
    assert main([*base, "--source", "/no/such/video.mp4"]) == 1
    bad = json.loads(capsys.readouterr().out)
    assert bad["can_start"] is False and "/no/such/video.mp4" in bad["reasons"][0]
    assert main(["doctor", "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err


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
