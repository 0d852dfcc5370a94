"""Real image files made for tests: huge PNGs written row by row (a 20000x20000 image
without 400 MB in memory), and phone-style copies of real photos (EXIF orientation,
16-bit grey, palette)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image

# the stored image that a viewer turns upright with each EXIF orientation (the inverse
# of the transpose the viewer applies)
STORED_FOR = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_270}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_blank_png(path: Path, width: int, height: int) -> Path:
    """A valid, black, 8-bit greyscale PNG of ``width`` x ``height``, compressed as it is
    written (a few hundred kB for 20000x20000)."""
    comp = zlib.compressobj(1)
    rows = 256
    block = b"\0" * ((width + 1) * rows)  # per row: filter byte 0, then the row
    parts = [comp.compress(block) for _ in range(height // rows)]
    parts += [comp.compress(block[:(width + 1) * (height % rows)]), comp.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
                     + _chunk(b"IEND", b""))
    return path


def write_exif_rotated(src: Path, dest: Path, orientation: int, **save: object) -> Path:
    """``src`` stored as a camera that was turned would store it, with the EXIF
    orientation that makes a viewer show it as ``src`` is."""
    with Image.open(src) as im:
        upright = im.convert("RGB")
    stored = upright.transpose(STORED_FOR[orientation]) if orientation in STORED_FOR else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(dest, exif=exif, **save)
    return dest


def write_grey16(src: Path, dest: Path) -> Path:
    """``src`` as a 16-bit greyscale PNG (each 8-bit grey level v stored as v * 257)."""
    import numpy as np

    with Image.open(src) as im:
        grey = np.asarray(im.convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey).save(dest)  # mode I;16
    return dest


def cached_blank_png(width: int, height: int) -> Path:
    """``write_blank_png`` into the temporary folder once per size (shared by the tests of
    one machine; written to a temporary name and renamed, so never seen half-written)."""
    import os
    import tempfile

    path = Path(tempfile.gettempdir()) / f"edgepose-tests-blank-{width}x{height}.png"
    if not path.is_file():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
        write_blank_png(tmp, width, height)
        os.replace(tmp, path)
    return path
