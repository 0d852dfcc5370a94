"""One writer per output file, whatever the path it is reached by: a lock file beside the
file's real path (symlinks resolved) holding the writer's PID, and a lock on the file
itself (its inode: a hard link, a bind mount) once it exists. Both are ``flock`` locks,
so that a crashed writer's lock goes away with it."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from edgepose.core.errors import ConfigError


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def flock_holder(st: os.stat_result) -> str:
    """The PID holding a ``flock`` on the file ``st`` describes (from /proc/locks), or
    "unknown"."""
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == want:
                    return parts[4]
    except OSError:
        pass
    return "unknown"


class OutputLock:
    """``acquire()`` or a one-line ``ConfigError`` naming the process that holds the file.

    ``adopt(fd)`` locks a file the output has just created, so that a writer reaching it
    later through a hard link is refused too."""

    def __init__(self, path: str | Path, what: str = "output") -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None       # the lock file
        self._file_fd: int | None = None  # the output file itself, when locked

    def _busy(self, holder: str) -> ConfigError:
        return ConfigError(f"{self.what} {self.path} is being written by another process "
                           f"(PID {holder}); stop it or pick another file")

    def acquire(self) -> None:
        lp = lock_path(self.path.resolve())
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
            raise self._busy(holder) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # a full disk: the lock holds, only the PID is not on record
            pass
        self._fd = fd
        try:
            self._lock_existing_file()
        except ConfigError:
            self.release()
            raise

    def _lock_existing_file(self) -> None:
        """Lock the file itself when it is already there (opened read-only: nothing is
        changed), so that another name for the same inode finds it busy."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:  # not there yet (locked at creation), or not readable
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise self._busy(flock_holder(st)) from None
        self._file_fd = fd

    def adopt(self, fd: int) -> None:
        """Lock the file just created on ``fd`` (no-op when the file was locked at
        ``acquire``); ``ConfigError`` if another process got there first."""
        if self._file_fd is not None or self._fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise self._busy(flock_holder(os.fstat(fd))) from None

    def release(self) -> None:
        file_fd, self._file_fd = self._file_fd, None
        if file_fd is not None:
            os.close(file_fd)
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            lock_path(self.path.resolve()).unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing drops the flock
