"""The one OpenCV importer. cv2 is optional (extras ``pi``/``desktop``): where it is the
fast path, callers take ``optional_cv2()`` and fall back; where it is needed, ``import_cv2``
raises the caller's error type in one line naming the extra to install."""

from __future__ import annotations

from typing import Any

from edgepose.core.errors import EdgePoseError

INSTALL_HINT = "pip install 'edgepose[pi]' (or opencv-python-headless)"


def optional_cv2() -> Any:
    """OpenCV, or None where it is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def import_cv2(error: type[EdgePoseError] = EdgePoseError) -> Any:
    """OpenCV, or ``error`` (one line, naming the extra that installs it)."""
    cv2 = optional_cv2()
    if cv2 is None:
        raise error(f"OpenCV (cv2) is not installed: {INSTALL_HINT}")
    return cv2
