"""systemd's sd_notify protocol without a dependency: READY/WATCHDOG/STOPPING datagrams
to ``$NOTIFY_SOCKET`` (a path, or an abstract socket written with a leading '@')."""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address(path: str) -> str | bytes:
    # '@name' is systemd's spelling of a Linux abstract socket: a leading NUL byte.
    return b"\0" + path[1:].encode() if path.startswith("@") else path


def notify(state: str, *, socket_path: str | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1"); False when not run by systemd or the send failed.

    Never raises: a monitoring hiccup must not stop the pose pipeline.
    """
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path or not (path.startswith("/") or path.startswith("@")):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(_address(path))
            sock.sendall(state.encode())
        return True
    except OSError as err:
        log.warning("sd_notify to %s failed: %s", path, err)
        return False


def ready(status: str | None = None) -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog_interval() -> float | None:
    """Seconds between pings systemd expects (half of ``WatchdogSec``), or None when the
    watchdog is off or meant for another process (``$WATCHDOG_PID``)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class Watchdog:
    """Rate-limited WATCHDOG=1: call ``ping()`` from the main loop as often as you like;
    it sends at most once per ``interval`` seconds (from ``$WATCHDOG_USEC`` by default)."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = watchdog_interval() if interval is None else interval
        self._last = -float("inf")
        self.sent = 0

    def ping(self, now: float | None = None) -> bool:
        if not self.interval:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last < self.interval:
            return False
        self._last = now
        if notify("WATCHDOG=1"):
            self.sent += 1
            return True
        return False
