"""Shared fixtures: where ../shared lives, and an environment that never touches the
user's cache, the network or a real display."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(SHARED / "models"))
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def load_rgb(path: Path) -> np.ndarray:
    from edgepose.imageio import read_image

    return read_image(path)


def _edgetpu_available() -> bool:
    try:
        from edgepose.engine import load_edgetpu_delegate

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
