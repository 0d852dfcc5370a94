"""Read images from disk as RGB uint8 arrays, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import SourceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | Path) -> npt.NDArray[np.uint8]:
    """The image at ``path`` as an (H, W, 3) RGB uint8 array."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"image {p} not found")
    if p.is_dir():
        raise SourceError(f"image {p} is a directory; give image files (or use it as a --source folder)")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        kind = "empty" if p.stat().st_size == 0 else "not a readable image"
        raise SourceError(f"image {p} is {kind} ({type(exc).__name__}); give a JPEG, PNG or BMP file") from None


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
