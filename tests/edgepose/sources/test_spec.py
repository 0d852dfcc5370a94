"""open_source / make_source: which backend a --source spec gets, and bad specs in one line."""

from __future__ import annotations

import sys

import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import ImageSource, OpenCVSource, ReconnectingSource, make_source
from tests.conftest import shared_path

cv2 = pytest.importorskip("cv2")

# --- open_source dispatch ------------------------------------------------------------

@pytest.mark.parametrize("spec, kind", [
    ("videos/sports2d_demo.mp4", OpenCVSource),
    ("images/coral_squat.bmp", ImageSource),
    ("images", ImageSource),
    ("0", ReconnectingSource),
    ("rtsp://127.0.0.1:8554/cam", ReconnectingSource),
    ("picamera", ReconnectingSource),
])
def test_make_source_picks_the_backend(spec: str, kind: type) -> None:
    if not spec[0].isdigit() and "://" not in spec and spec != "picamera":
        spec = str(shared_path(*spec.split("/")))
    src = make_source(spec)
    assert isinstance(src, kind)
    assert src.is_live == (kind is ReconnectingSource)


@pytest.mark.parametrize("spec, match", [
    ("no/such/video.mp4", "not found"),
    ("/dev/video97", "webcam /dev/video97 not found"),
])
def test_make_source_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        make_source(spec)


def test_auto_without_any_camera_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    monkeypatch.setattr("edgepose.sources.find_webcams", lambda: [])
    with pytest.raises(SourceError, match="rpicam-hello --list-cameras"):
        make_source("auto")
