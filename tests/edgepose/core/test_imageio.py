"""edgepose.core.imageio: images read as a viewer shows them, and refused by type, size and
pixel count before they are decoded."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from edgepose.core.errors import SourceError
from edgepose.core.imageio import probe_image, read_image
from edgepose.core.limits import MAX_PIXELS
from tests.conftest import shared_path
from tests.fakes.images import cached_blank_png, write_blank_png, write_exif_rotated, write_grey16


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    src = shared_path("images", "ultralytics_zidane.jpg")  # 1280x720: a turn shows
    stored = write_exif_rotated(src, tmp_path / "phone.png", orientation)  # lossless
    upright = read_image(src)
    got = read_image(stored)
    np.testing.assert_array_equal(got, upright)
    with Image.open(stored) as im:  # PIL's own reading of the tag agrees
        np.testing.assert_array_equal(got, np.asarray(ImageOps.exif_transpose(im).convert("RGB")))
    assert probe_image(stored) == (1280, 720)
    if orientation in (5, 6, 7, 8):
        assert Image.open(stored).size == (720, 1280)  # stored on its side


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    src = shared_path("images", "posenet_test_couple.jpg")
    grey16 = write_grey16(src, tmp_path / "g16.png")
    assert Image.open(grey16).mode == "I;16"
    grey8 = tmp_path / "g8.png"
    Image.open(src).convert("L").save(grey8)
    got = read_image(grey16)
    np.testing.assert_array_equal(got, read_image(grey8))  # v * 257 comes back as v
    assert got.shape == (1278, 1920, 3) and (got < 255).mean() > 0.5  # clipped: all white


def test_float_and_32_bit_grey(tmp_path: Path) -> None:
    grey = np.asarray(Image.open(shared_path("images", "coral_squat.bmp")).convert("L"))
    tif = tmp_path / "f.tif"
    Image.fromarray(grey.astype(np.float32) / 255.0).save(tif)  # float 0..1 (mode F)
    assert Image.open(tif).mode == "F"
    assert np.abs(read_image(tif)[..., 0].astype(int) - grey).max() <= 1


def test_palette_with_transparency_is_converted_without_a_warning(tmp_path: Path) -> None:
    src = shared_path("images", "ultralytics_bus.jpg")
    rgb = Image.open(src).convert("RGB")
    pal = rgb.quantize(256)
    pal.info["transparency"] = 0
    path = tmp_path / "p.png"
    pal.save(path, transparency=0)
    assert Image.open(path).mode == "P"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL asks for RGBA with a warning otherwise
        got = read_image(path)
    assert got.shape == (1080, 810, 3)
    assert np.abs(got.astype(int) - np.asarray(rgb)).mean() < 8  # 256 colours: close


def test_a_fifo_and_a_device_are_refused_unopened(tmp_path: Path) -> None:
    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"f.jpg is a FIFO \(named pipe\), not a regular file; give a JPEG"):
        read_image(fifo)
    with pytest.raises(SourceError, match=r"/dev/zero is a character device, not a regular file"):
        probe_image("/dev/zero")
    assert time.monotonic() - t0 < 1.0
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty.png is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.png")


def test_eps_is_not_a_format_we_decode(tmp_path: Path) -> None:
    """A PostScript file named .jpg would have PIL start Ghostscript: refused by format."""
    eps = tmp_path / "x.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(SourceError, match=r"x.jpg is not a readable image \(UnidentifiedImageError\)"):
        read_image(eps)


@pytest.mark.parametrize("size, match", [
    ((20000, 20000), r"big.png has 400 MP, over edgepose's limit of 50 MP; scale it down first"),
    ((10000, 10000), r"big.png is 10000x10000 \(100 MP\), over edgepose's limit of 50 MP"),
    ((8000, 6251), r"big.png is 8000x6251 \(50 MP\), over edgepose's limit"),
])
def test_the_pixel_limit_is_ours_and_checked_before_decoding(
        tmp_path: Path, size: tuple[int, int], match: str) -> None:
    path = tmp_path / "big.png"
    path.symlink_to(cached_blank_png(*size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would be an error
        t0 = time.monotonic()
        for read in (probe_image, read_image):
            with pytest.raises(SourceError, match=match) as info:
                read(path)
            assert "\n" not in str(info.value)
        assert time.monotonic() - t0 < 2.0  # refused from the header, nothing decoded


def test_an_image_at_the_pixel_limit_is_read(tmp_path: Path) -> None:
    path = write_blank_png(tmp_path / "ok.png", 8000, MAX_PIXELS // 8000)
    assert read_image(path).shape == (6250, 8000, 3)


def test_a_jpeg_cut_in_its_data_is_one_error(tmp_path: Path) -> None:
    data = shared_path("images", "posenet_test_couple.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    assert probe_image(cut) == (1920, 1278)  # the header is fine
    with pytest.raises(SourceError, match=r"cut.jpg is not a readable image \(OSError: image file is truncated"):
        read_image(cut)
