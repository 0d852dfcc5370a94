"""ReconnectingSource: reopening a failed camera with backoff, interrupts, first-open failures."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import OpenCVSource, ReconnectingSource
from edgepose.sources.picamera import PiCameraSource
from tests.conftest import shared_path

cv2 = pytest.importorskip("cv2")

# --- reconnect with backoff ----------------------------------------------------------

def test_reconnect_reopens_a_failed_camera_with_exponential_backoff(tmp_path: Path) -> None:
    video = shared_path("videos", "mmpose_demo.mp4")  # 5 frames, then the "camera" fails
    device = tmp_path / "cam0.mp4"
    device.symlink_to(video)
    src = ReconnectingSource(lambda: OpenCVSource(str(device), live=True),
                             initial_delay=0.02, max_delay=0.5, factor=2.0)
    src.open()
    device.unlink()  # unplugged: reopening fails until it is back
    replug = threading.Timer(0.25, lambda: device.symlink_to(video))
    replug.start()
    try:
        frames = [src.read() for _ in range(8)]
    finally:
        replug.cancel()
        src.close()
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(8))
    assert src.reconnects == 1
    waits = list(src.backoffs)
    assert len(waits) >= 3 and waits[:3] == [0.02, 0.04, 0.08]
    assert sum(waits) >= 0.25 - 0.02
    np.testing.assert_array_equal(frames[5].image, frames[0].image)  # the reopened stream


def test_interrupt_ends_a_backoff_wait_at_once(tmp_path: Path) -> None:
    device = tmp_path / "cam0.mp4"
    device.symlink_to(shared_path("videos", "mmpose_demo.mp4"))
    src = ReconnectingSource(lambda: OpenCVSource(str(device), live=True),
                             initial_delay=5.0, max_delay=5.0)
    src.open()
    device.unlink()
    for _ in range(5):
        assert src.read() is not None
    threading.Timer(0.1, src.interrupt).start()
    t0 = time.monotonic()
    assert src.read() is None
    assert time.monotonic() - t0 < 1.0
    src.close()


def test_first_open_failure_is_reported_not_retried(tmp_path: Path) -> None:
    src = ReconnectingSource(lambda: OpenCVSource(str(tmp_path / "gone.mp4"), live=True))
    with pytest.raises(SourceError, match="cannot open video source"):
        src.open()


@pytest.mark.parametrize("body,expected", [
    ("raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')",
     "pip install --force-reinstall simplejpeg"),
    ("raise ImportError('numpy.core.multiarray failed to import')", "pip install --force-reinstall simplejpeg"),
    ("import libcamera_not_here", "picamera2 cannot be imported: No module named 'libcamera_not_here'"),
])
def test_picamera_broken_install_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          body: str, expected: str) -> None:
    """A picamera2 that is present but fails to import (the numpy 1/2 clash of Debian's
    simplejpeg in a venv, or a missing libcamera binding) gets its own fix, not 'install it'."""
    pkg = tmp_path / "picamera2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with pytest.raises(SourceError) as info:
        PiCameraSource().open()
    assert expected in str(info.value) and "\n" not in str(info.value)
