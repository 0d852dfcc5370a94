"""Read images from disk as RGB uint8 arrays, the way a viewer shows them, with errors a
user can act on.

Bounded (``edgepose.core.limits``): a regular file of at most ``MAX_IMAGE_BYTES`` and
``MAX_PIXELS``, checked from the header before anything is decoded; PIL's own
decompression-bomb warning and error never reach the user. Shown as a viewer shows it:
the EXIF orientation applied (a phone photo taken upright is upright), 16-bit and float
grey levels scaled to 8 bits (not clipped), palette transparency and alpha dropped.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import SourceError
from edgepose.core.limits import MAX_IMAGE_BYTES, MAX_PIXELS, check_pixels, open_regular

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: the PIL formats we decode (never one that starts an external program, like EPS)
PIL_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
FIX = "give a JPEG, PNG or BMP file"
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the PIL transpose that shows the image upright (EXIF 2.32, 4.6.4)
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, by name (regular files only)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """The PIL image at ``path``, header read, pixels not yet decoded; SourceError for a
    file that is not a bounded regular image file of at most ``MAX_PIXELS``."""
    if path.is_dir():
        raise SourceError(f"image {path} is a directory; give image files (or use it as a "
                          "--source folder)")
    from PIL import Image, UnidentifiedImageError

    with open_regular(path, "image", SourceError, max_bytes=MAX_IMAGE_BYTES, fix=FIX) as fh:
        if fh.seek(0, 2) == 0:
            raise SourceError(f"image {path} is empty (0 bytes); {FIX}")
        fh.seek(0)
        with warnings.catch_warnings(record=True) as caught:  # PIL's are ours to word
            warnings.simplefilter("always")
            try:
                with Image.open(fh, formats=PIL_FORMATS) as im:
                    check_pixels(im.width, im.height, f"image {path}", SourceError)
                    yield im
            except Image.DecompressionBombError as exc:
                found = re.search(r"\((\d+) pixels\)", str(exc))
                size = f"{int(found.group(1)) / 1e6:.0f} MP" if found else "too many pixels"
                raise SourceError(f"image {path} has {size}, over edgepose's limit of "
                                  f"{MAX_PIXELS / 1e6:.0f} MP; scale it down first") from None
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                    IndexError, MemoryError) as exc:
                raise SourceError(f"image {path} is not a readable image "
                                  f"({type(exc).__name__}); {FIX}") from None
        for w in caught:
            log.debug("%s: %s", path, w.message)


def probe_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of the image at ``path`` as shown (EXIF orientation applied),
    read from its header: SourceError when ``read_image`` would refuse it for its type,
    size or format."""
    with _opened(Path(path)) as im:
        w, h = im.size
        return (h, w) if _orientation(im) in (5, 6, 7, 8) else (w, h)


def read_image(path: str | Path) -> npt.NDArray[np.uint8]:
    """The image at ``path`` as an (H, W, 3) RGB uint8 array, upright as a viewer shows it."""
    p = Path(path)
    with _opened(p) as im:
        try:
            orientation = _orientation(im)
            rgb = _to_rgb(im)
            if orientation in _TRANSPOSE:
                from PIL import Image

                rgb = rgb.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation]))
            return np.asarray(rgb)
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
            raise SourceError(f"image {p} is not a readable image ({type(exc).__name__}: "
                              f"{str(exc)[:80]}); {FIX}") from None


def _orientation(im: Any) -> int:
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block: shown as stored, like viewers do
        return 1
    return value if isinstance(value, int) else 1


def _to_rgb(im: Any) -> Any:
    """``im`` as an 8-bit RGB PIL image; 16-bit/32-bit/float grey scaled, not clipped."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        im.load()
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = np.asarray(im)
        if mode == "F":  # float: 0..1 when it fits, else 0..255
            scale = 255.0 if float(np.nanmax(grey, initial=0.0)) <= 1.0 else 1.0
            g8 = np.clip(np.nan_to_num(grey) * scale + 0.5, 0, 255).astype(np.uint8)
        else:  # 16-bit samples (PNG, TIFF), also when PIL widened them to 32-bit "I"
            g16 = np.clip(grey, 0, 65535).astype(np.uint32)
            g8 = ((g16 * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(g8).convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # what PIL asks for, instead of warning
    return im.convert("RGB")


def write_image(path: str | Path, image: npt.NDArray[np.uint8]) -> Path:
    from PIL import Image

    p = Path(path)
    Image.fromarray(image).save(p)
    return p


def encode_image(image: npt.NDArray[np.uint8], fmt: str = "jpg", quality: int = 80, max_width: int = 0) -> bytes:
    """``image`` (RGB) as JPEG (``fmt`` "jpg") or PNG bytes, first shrunk by a whole factor
    to at most ``max_width`` pixels wide when that is given (a box filter, fast on the Pi)."""
    import io

    from PIL import Image

    im = Image.fromarray(image)
    if max_width and im.width > max_width:
        im = im.reduce(-(-im.width // max_width))  # ceil
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG")
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
