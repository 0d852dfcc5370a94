"""Bounds on what edgepose reads: the one home for "is this a regular file of a sane size"
(models, configs, manifests, images, video files) and for the pixel limit (images, video
frames, camera sizes).

A FIFO, a device (``/dev/zero``), a socket or a folder given where a file is expected is
refused by its type before it is opened for reading, and a file over the size limit for
its kind before a byte is read, so a wrong path costs one line instead of a hang or
gigabytes of memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from edgepose.core.errors import EdgePoseError

#: the most pixels (width x height) of an image, a video frame or a camera size: 50 MP,
#: above any phone or Pi camera's photos. One RGB frame of that size is 150 MB.
MAX_PIXELS = 50_000_000
#: the longest side accepted for a camera size (width or height setting)
MAX_SIDE = 16384

MiB = 1 << 20
MAX_MODEL_BYTES = 512 * MiB   # a .tflite is read whole (Edge TPU models are a few MB)
MAX_TOML_BYTES = 1 * MiB      # a config file or a model manifest
MAX_IMAGE_BYTES = 512 * MiB   # a 50 MP 16-bit RGBA TIFF, uncompressed, is 400 MB


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words ("a FIFO", "a character device", ...)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n and n % MiB == 0 else f"{n:,} bytes"


def check_file(path: str | Path, what: str, error: type[EdgePoseError], *,
               max_bytes: int | None = None, fix: str = "") -> os.stat_result:
    """The ``stat`` of ``path`` when it is a regular file (symlinks followed) of at most
    ``max_bytes``; else ``error`` naming ``what``, ``path`` and ``fix``. Nothing is opened."""
    fix = f"; {fix}" if fix else ""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} not found{fix}") from None
    except OSError as err:
        raise error(f"{what} {path} cannot be read ({err.strerror}){fix}") from None
    return _check_stat(st, path, what, error, max_bytes, fix)


def _check_stat(st: os.stat_result, path: str | Path, what: str, error: type[EdgePoseError],
                max_bytes: int | None, fix: str) -> os.stat_result:
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is {file_kind(st.st_mode)}, not a regular file{fix}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{what} {path} is {_size(st.st_size)}, over the {_size(max_bytes)} a {what} "
                    f"may have{fix}")
    return st


def open_regular(path: str | Path, what: str, error: type[EdgePoseError], *,
                 max_bytes: int, fix: str = "") -> BinaryIO:
    """``path`` opened for binary reading after ``check_file``; the opened file is checked
    again (it may have been swapped meanwhile) and never blocks on opening."""
    check_file(path, what, error, max_bytes=max_bytes, fix=fix)
    fix_ = f"; {fix}" if fix else ""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise error(f"{what} {path} cannot be read ({err.strerror}){fix_}") from None
    try:
        _check_stat(os.fstat(fd), path, what, error, max_bytes, fix_)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_bounded(path: str | Path, what: str, error: type[EdgePoseError], *,
                 max_bytes: int, fix: str = "") -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them (a file that
    grows past the limit while being read is refused too)."""
    with open_regular(path, what, error, max_bytes=max_bytes, fix=fix) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        fix_ = f"; {fix}" if fix else ""
        raise error(f"{what} {path} is over the {_size(max_bytes)} a {what} may have{fix_}")
    return data


def check_pixels(width: int, height: int, what: str, error: type[EdgePoseError],
                 fix: str = "") -> None:
    """``error`` when a ``width`` x ``height`` picture is over ``MAX_PIXELS``."""
    if width * height > MAX_PIXELS:
        fix = fix or "scale it down first"
        raise error(f"{what} is {width}x{height} ({width * height / 1e6:.0f} MP), over edgepose's "
                    f"limit of {MAX_PIXELS / 1e6:.0f} MP; {fix}")
