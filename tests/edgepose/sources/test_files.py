"""File sources as the user sees them: image folders where nothing is readable, videos
with a rotation tag, a variable frame rate, or frames over the pixel limit."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import ImageSource, open_source
from tests.conftest import shared_path
from tests.fakes.videos import read_frames, vfr_times, write_video


def test_a_folder_with_no_readable_image_is_refused_at_open(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"junk")
    (tmp_path / "b.png").write_bytes(b"")
    src = ImageSource(tmp_path)
    with pytest.raises(SourceError, match=r"has no readable image: image .*a.jpg is not a readable image "
                                          r".*\(and 1 more\)"):
        src.open()


def test_a_folder_whose_images_fail_only_when_decoded_ends_with_an_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = shared_path("images", "posenet_test_couple.jpg").read_bytes()
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(data[: len(data) // 3])  # headers fine, data cut
    with caplog.at_level(logging.WARNING, logger="edgepose.sources"):
        with open_source(str(tmp_path)) as src:
            frames = [src.read(), src.read()]
            assert [bool(f.error) for f in frames if f is not None] == [True, True]
            with pytest.raises(SourceError, match=r"none of its 2 images could be read"):
                src.read()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_one_good_image_among_bad_ones_is_a_normal_run(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"junk")
    (tmp_path / "b.bmp").symlink_to(shared_path("images", "coral_squat.bmp"))
    with open_source(str(tmp_path)) as src:
        frames = list(src)
    assert [(f.name, bool(f.error)) for f in frames] == [("a.jpg", True), ("b.bmp", False)]


@pytest.mark.parametrize("rotation, turn", [(90, -1), (180, 2), (270, 1)])
def test_a_rotation_tag_is_applied_to_every_frame(tmp_path: Path, rotation: int, turn: int) -> None:
    frames = read_frames(shared_path("videos", "sports2d_demo.mp4"), 3, scale=4)
    stored = [np.ascontiguousarray(np.rot90(f, k=turn)) for f in frames]
    path = write_video(tmp_path / "phone.mp4", stored, rotation=rotation)
    with open_source(str(path)) as src:
        got = [f.image for f in src]
    assert len(got) == 3
    for g, f in zip(got, frames):
        assert g.shape == f.shape
        assert np.abs(g.astype(int) - f).mean() < 6  # lossy H.264, upright again


def test_a_variable_frame_rate_mkv_is_complete_and_a_cut_one_is_not(tmp_path: Path) -> None:
    frames = read_frames(shared_path("videos", "sports2d_demo.mp4"), 40, scale=4)
    path = write_video(tmp_path / "vfr.mkv", frames, pts_ms=vfr_times(40))
    with open_source(str(path)) as src:
        assert len(list(src)) == 40  # although OpenCV estimates more from the duration
    assert not src.truncated
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with open_source(str(cut), allow_truncated=True) as src:
        got = len(list(src))
    assert src.truncated and 0 < got < 40


def test_video_frames_over_the_pixel_limit_are_refused_at_open(tmp_path: Path) -> None:
    path = write_video(tmp_path / "huge.mkv", [np.zeros((7000, 8000, 3), np.uint8)], codec="mjpeg")
    with pytest.raises(SourceError, match=r"huge.mkv is 8000x7000 \(56 MP\), over edgepose's limit of 50 MP"):
        open_source(str(path))
