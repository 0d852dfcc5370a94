"""JSON Lines: one record per line, to a file or stdout."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from edgepose.core.errors import ConfigError, OutputError
from edgepose.core.stdio import silence_stdout
from edgepose.outputs.base import FrameResult, Output
from edgepose.outputs.files import check_writable_file
from edgepose.outputs.lock import OutputLock
from edgepose.outputs.records import record_text


class JsonLinesOutput(Output):
    """One JSON object per line, each written whole to the OS as soon as it is made, so a
    reader (``tail -f``, a crash) sees only complete records.

    A file is created (replacing an existing one) at the first record, so a run that
    fails to start leaves it untouched, and it is locked against a second writer. When a
    write fails (disk full) the file is cut back to its last complete record: it stays
    valid JSON Lines. ``-`` writes to stdout; a reader that goes away (``| head``) raises
    ``BrokenPipeError``, which ends the run quietly.
    """

    kind = "jsonl"
    blocking = True

    def __init__(self, spec: str, *, flag: str = "--json", **_: Any) -> None:
        super().__init__(spec)
        self.flag = flag
        self.stdout = spec == "-"
        self.path = None if self.stdout else Path(spec).expanduser()
        self._lock = None if self.path is None else OutputLock(self.path, f"{flag}")
        self._fd: int | None = None
        self._good = 0  # bytes of complete records in the file

    def _stream(self) -> bool:
        """A path to something that is not a file (a pipe, /dev/stdout, a terminal, a
        socket): written as it is, with no lock file and nothing to cut back."""
        return self.path is not None and self.path.exists() and not self.path.is_file()

    def check(self) -> None:
        if self.path is not None and not self.path.is_char_device():
            check_writable_file(self.path, self.flag)

    def open(self) -> None:
        if self._lock is not None and not self._stream():
            self._lock.acquire()

    def _open_file(self) -> int:
        """Create or open the file, lock it, then empty it (not before: a writer reaching
        the same file by another name must find it locked, not truncated)."""
        assert self.path is not None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise OutputError(f"{self.flag} {self.path}: cannot open for writing ({err.strerror})") from None
        try:
            if self._lock is not None:
                self._lock.adopt(fd)
            if os.fstat(fd).st_size:
                os.ftruncate(fd, 0)
        except ConfigError as err:
            os.close(fd)
            raise OutputError(str(err)) from None
        except OSError as err:
            os.close(fd)
            raise OutputError(f"{self.flag} {self.path}: cannot empty it ({err.strerror})") from None
        return fd

    def write(self, result: FrameResult) -> None:
        line = record_text(result.record) + "\n"
        if self.stdout:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except BrokenPipeError:
                silence_stdout()
                raise
            self.written += 1
            return
        if self._fd is None:
            self._fd = self._open_file()
        data = line.encode()
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as err:
            self._rewind()
            full = " (disk full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            raise OutputError(f"{self.flag} {self.path}: write failed: {err.strerror}{full}; "
                              f"it holds the first {self.written} records, each complete") from None
        self._good += len(data)
        self.written += 1

    def _rewind(self) -> None:
        """Cut a partly written last line off the file."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._good)
            except OSError:  # a character device (/dev/full) or a vanished file
                pass

    def close(self) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)
        finally:
            if self._lock is not None:
                self._lock.release()

    def summary(self) -> str:
        text = super().summary()
        return text.replace(f"{self.spec}: ", f"{self.flag} {self.spec}: ", 1).replace(
            "frame(s)", "record(s)")
