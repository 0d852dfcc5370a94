"""Keep what native libraries print on stderr (FFmpeg's "moov atom not found", TFLite's
"Created TensorFlow Lite XNNPACK delegate", TensorFlow's start-up chatter) out of the
user's terminal: it goes to the debug log, so a CLI's error stays one line.

``capture_native_stderr()`` moves Python's own stderr (``sys.stderr``, the logging
handlers) to a duplicate of the original stream, then points file descriptor 2 at a
pipe that a daemon thread reads line by line into ``log.debug``. Child processes inherit
the pipe, so their native noise lands in the debug log too.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
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
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stderr:
            handler.setStream(stream)
    sys.stderr = stream
    threading.Thread(target=_pump, args=(read_end,), name="edgepose-native-stderr", daemon=True).start()
    _state["stderr"] = stream
    return stream
