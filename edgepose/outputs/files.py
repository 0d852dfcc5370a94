"""What the file outputs (JSON Lines, recordings, snapshots) and ``detect --output`` share:
the checks that a path can be written, without creating anything."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from edgepose.core.errors import ConfigError, describe_error


def check_writable_folder(folder: Path, what: str) -> None:
    """ConfigError unless a file can be made in ``folder``. Probed with an unnamed
    temporary file (O_TMPFILE): nothing appears in the folder, and unlike ``access()``
    it is right for root, read-only mounts and pseudo file systems."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise ConfigError(f"{what}: cannot write into {folder}, it is not writable ({describe_error(err)}); "
                          "pass a writable folder") from None


def check_writable_file(path: Path, what: str, suffixes: tuple[str, ...] = ()) -> None:
    """ConfigError unless ``path`` could be created or replaced (folder exists and is
    writable, not a directory, suffix one of ``suffixes``); touches nothing."""
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{what} {path}: expected a {' or '.join(suffixes)} file name")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; pass a file name")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        # a FIFO or device is a stream: opening it to probe would hand its reader an end
        # of file, so only its permission bits are checked; nothing is made beside it, so
        # its folder need not take files (bash's >(...) gives /dev/fd/63)
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{what} {path} exists and cannot be written (permission denied); "
                              "pass another file name")
        return
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"{what} {path}: folder {folder} does not exist; create it first")
    check_writable_folder(folder, f"{what} {path}")
    if path.exists():
        try:  # opened for writing, not truncated: the file is left as it is
            open(path, "r+b").close()
        except OSError as err:
            raise ConfigError(f"{what} {path} exists and cannot be written ({describe_error(err)}); "
                              "pass another file name") from None


STDOUT_PATHS = ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1")


def destination(path: Path | None) -> tuple[object, ...] | None:
    """What a file output really writes to, for "one destination, one output": stdout
    (``path`` None, or a path that is this process's stdout), an existing file by its
    device and inode (so symlinks and hard links compare equal), a new file by its
    resolved path; None for other devices (/dev/null), which any number may share."""
    if path is None or str(path) in STDOUT_PATHS:
        return ("stdout",)
    try:
        st = path.stat()
    except OSError:
        return ("path", str(path.resolve()))
    if stat.S_ISREG(st.st_mode):
        return ("file", st.st_dev, st.st_ino)
    try:
        out = os.fstat(1)
    except OSError:
        return None
    return ("stdout",) if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino) and \
        not stat.S_ISCHR(st.st_mode) else None
