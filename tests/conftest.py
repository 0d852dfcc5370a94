"""Shared fixtures: where ../shared lives, and an environment that never touches the
user's cache, the network or a real display."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.fakes.libedgetpu import FakeLibedgetpu, build, find_compiler

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPOSE_SHARED", REPO.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """A file under ../shared (or $EDGEPOSE_SHARED); skips the test when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found: set EDGEPOSE_SHARED to the shared data folder")
    return p


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} not found: set EDGEPOSE_SHARED")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))  # user models
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(SHARED / "models"))
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


@pytest.fixture(scope="session")
def fake_libedgetpu(tmp_path_factory: pytest.TempPathFactory) -> FakeLibedgetpu:
    """A stand-in ``libedgetpu.so.1`` compiled from tests/fakes/fake_libedgetpu.c with the
    system C compiler (``$CC``, cc, gcc or clang) into a session temp folder.

    It exports ``tflite_plugin_create_delegate`` / ``tflite_plugin_destroy_delegate``, the
    two symbols ``load_delegate`` looks up, so the real interpreter loads it. Use it in a
    child process: ``subprocess.run(cmd, env=fake_libedgetpu.env("segv"))`` puts its folder
    first on ``LD_LIBRARY_PATH`` and sets ``EDGEPOSE_FAKE_EDGETPU``, which picks what
    ``tflite_plugin_create_delegate`` does:

    - ``segv``: dies of SIGSEGV inside it (rc -11), the reported runtime-pairing crash;
    - ``hang``: never returns (SIGINT does not end it; SIGTERM / SIGKILL do);
    - ``abort``: SIGABRT (rc -6);
    - ``nodevice``: returns NULL, so ``load_delegate`` raises ValueError, as with no
      accelerator plugged in (also what an unset variable does);
    - ``inert``: returns a delegate that claims no op: a CPU model runs on the CPU, an
      Edge TPU model fails in allocate_tensors ("unresolved custom op").

    Skips the test when there is no C compiler.
    """
    compiler = find_compiler()
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the fake libedgetpu: apt-get install gcc")
    return FakeLibedgetpu(build(tmp_path_factory.mktemp("fake-libedgetpu"), compiler))


def load_rgb(path: Path) -> np.ndarray:
    from edgepose.core.imageio import read_image

    return read_image(path)


def _edgetpu_available() -> bool:
    try:
        from edgepose.inference.engine import load_edgetpu_delegate

        load_edgetpu_delegate()
        return True
    except Exception:
        return False


def _picamera_available() -> bool:
    try:
        from picamera2 import Picamera2  # noqa: F401

        return bool(Picamera2.global_camera_info())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Hardware tests run only where the hardware is (a Pi with the accelerator/camera)."""
    checks = {"edgetpu": (_edgetpu_available, "needs a Coral Edge TPU and libedgetpu"),
              "picamera": (_picamera_available, "needs a Raspberry Pi camera and picamera2")}
    for marker, (probe, reason) in checks.items():
        marked = [i for i in items if i.get_closest_marker(marker)]
        if marked and not probe():
            for item in marked:
                item.add_marker(pytest.mark.skip(reason=reason))
