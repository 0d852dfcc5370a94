"""Keep what native libraries print on stderr (FFmpeg's "moov atom not found", TFLite's
"Created TensorFlow Lite XNNPACK delegate", TensorFlow's start-up chatter) out of the
user's terminal: it goes to the debug log, so a CLI's error stays one line.

``capture_native_stderr()`` moves Python's own stderr (``sys.stderr``, the logging
handlers) to a duplicate of the original stream, then points file descriptor 2 at a
pipe that a daemon thread reads line by line into ``log.debug``. Child processes inherit
the pipe, so their native noise lands in the debug log too.

``native_stderr_to_log()`` does the same for a block of library code (an interpreter
loading) where no CLI captured fd 2: native writes during the block go to the debug log,
Python's own stderr (a WARNING logged meanwhile) still reaches the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

log = logging.getLogger("edgepose.native")
_state: dict[str, object] = {}


def _pump(fd: int) -> None:
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        pending = b""
        while True:
            try:
                chunk = pipe.read(4096)
            except OSError:
                return
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace").rstrip()
                if text:
                    log.debug("native: %s", text)
        if pending.strip():
            log.debug("native: %s", pending.decode("utf-8", "replace").rstrip())


def _log_lines(data: bytes) -> None:
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            log.debug("native: %s", line.rstrip())


def _move_python_stderr(stream: IO[str]) -> IO[str]:
    """Point ``sys.stderr`` and the logging handlers writing to it at ``stream``; returns
    the stream they had."""
    old = sys.stderr
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is old:
            handler.setStream(stream)
    sys.stderr = stream
    return old


@contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """For the block: what native code writes to file descriptor 2 goes to the debug log,
    while Python's own stderr keeps reaching the terminal. Nothing to do after
    ``capture_native_stderr()`` (fd 2 already goes to the log) or when stderr is not fd 2
    (pytest's capture, IDEs)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        fd = -1
    if "stderr" in _state or fd != 2:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.set_inheritable(saved, False)
    python_side = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    old = _move_python_stderr(python_side)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            _move_python_stderr(old)
            python_side.close()
            tmp.seek(0)
            _log_lines(tmp.read())


def capture_native_stderr() -> IO[str] | None:
    """Route native writes to fd 2 into the debug log; returns Python's new stderr (None
    when stderr is not a real file descriptor, e.g. under pytest's capture, or when
    already done). Idempotent; for CLIs, not for library use."""
    if "stderr" in _state:
        return _state["stderr"]  # type: ignore[return-value]
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    if fd != 2:
        return None
    sys.stderr.flush()
    saved = os.dup(2)
    os.set_inheritable(saved, False)
    stream = os.fdopen(saved, "w", buffering=1, encoding="utf-8", errors="replace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    _move_python_stderr(stream)
    threading.Thread(target=_pump, args=(read_end,), name="edgepose-native-stderr", daemon=True).start()
    _state["stderr"] = stream
    return stream
