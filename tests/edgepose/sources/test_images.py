"""ImageSource: folders in name order, one image looping, bad files skipped or refused."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import ImageSource, OpenCVSource, open_source
from tests.conftest import load_rgb, shared_path

cv2 = pytest.importorskip("cv2")

# --- images --------------------------------------------------------------------------

def test_image_folder_in_name_order_and_single_image_loop(tmp_path: Path) -> None:
    squat = shared_path("images", "coral_squat.bmp")
    couple = shared_path("images", "posenet_test_couple.jpg")
    (tmp_path / "b.jpg").symlink_to(couple)
    (tmp_path / "a.bmp").symlink_to(squat)
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path)) as src:
        frames = list(src)
    assert len(frames) == 2
    np.testing.assert_array_equal(frames[0].image, load_rgb(squat))
    np.testing.assert_array_equal(frames[1].image, load_rgb(couple))
    with ImageSource(squat, loop=True) as src:
        a, b = src.read(), src.read()
    assert a is not None and b is not None and (a.index, b.index) == (0, 1)
    np.testing.assert_array_equal(a.image, b.image)
    a.image[:] = 0  # a renderer drawing on one frame must not change the next
    assert b.image.any()


def test_bad_image_in_a_folder_is_skipped_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    squat = shared_path("images", "coral_squat.bmp")
    couple = shared_path("images", "posenet_test_couple.jpg")
    (tmp_path / "a.bmp").symlink_to(squat)
    (tmp_path / "b.jpg").write_bytes(couple.read_bytes()[:200])  # a truncated JPEG
    (tmp_path / "c.jpg").symlink_to(couple)
    with caplog.at_level(logging.WARNING, logger="edgepose.sources"):
        with ImageSource(tmp_path, loop=True) as src:
            frames = [src.read() for _ in range(6)]  # twice round the folder
    assert all(f is not None for f in frames)
    assert [f.name for f in frames] == ["a.bmp", "b.jpg", "c.jpg"] * 2
    assert [f.index for f in frames] == list(range(6))
    good = [f for f in frames if not f.error]
    assert len(good) == 4
    np.testing.assert_array_equal(frames[0].image, load_rgb(squat))
    np.testing.assert_array_equal(frames[2].image, load_rgb(couple))  # later images go on
    bad = frames[1]
    assert bad.image.shape == (1, 1, 3) and bad.image.dtype == np.uint8
    assert "b.jpg is not a readable image" in bad.error and "\n" not in bad.error
    assert frames[4].error == bad.error
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "b.jpg" in warnings[0]  # once, not once per round


@pytest.mark.parametrize("make, match", [
    (lambda d: ImageSource(d / "missing.jpg"), "not found"),
    (lambda d: ImageSource(d), "has no images"),
    (lambda d: ImageSource((d / "x.jpg").write_bytes(b"\xff\xd8 junk") and d / "x.jpg"),
     "x.jpg is not a readable image"),  # one image: checked at open, not mid-run
    (lambda d: OpenCVSource(d / "missing.mp4"), "not found"),
    (lambda d: OpenCVSource((d / "x.mp4").write_text("junk") and d / "x.mp4"), "cannot open"),
])
def test_bad_files_raise_one_line_source_errors(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(SourceError, match=match) as info:
        make(tmp_path).open()
    assert "\n" not in str(info.value)
