"""One writer per output file: a lock file beside it holding the writer's PID, locked with
``flock`` so that a crashed writer's lock goes away with it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from edgepose.core.errors import ConfigError


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


class OutputLock:
    """``acquire()`` or a one-line ``ConfigError`` naming the process that holds the file."""

    def __init__(self, path: str | Path, what: str = "output") -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        lp = lock_path(self.path)
        try:
            fd = os.open(lp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise ConfigError(f"{self.what} {self.path}: cannot create its lock file {lp} "
                              f"({err.strerror}); pass a writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"{self.what} {self.path} is being written by another process "
                              f"(PID {holder}); stop it or pick another file") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # a full disk: the lock holds, only the PID is not on record
            pass
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            lock_path(self.path).unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing drops the flock
