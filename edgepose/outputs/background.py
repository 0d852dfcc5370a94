"""A base for network outputs that never hold the pipeline up.

Each ``BackgroundOutput`` runs its peer connection on its own thread behind a 1-slot
box: ``write()`` only swaps the newest result into the box (an older one not yet taken
is counted in ``dropped``), so a slow, stalled or dead peer costs the pipeline nothing.
The thread connects, sends, and on any failure logs one line per outage (not one per
retry), waits with exponential backoff and connects again; it never stops the run.
``close()`` gives the thread a moment to send what is pending and say goodbye, then
aborts the connection, so a dead peer cannot hold shutdown up for more than about
``close_timeout`` seconds.

A backend implements the hooks that run on the thread: ``_connect``, ``_send``,
``_idle`` (keep-alives while nothing is pending), ``_reset`` (forget a broken
connection), ``_disconnect`` (a bounded goodbye), and ``_abort``, the one hook called
from another thread, to unblock a stuck call.

An output whose work costs real CPU (the live view's JPEGs) sets ``niceness``: its
thread then runs nicer than the pipeline, so that on a busy machine the pipeline keeps
its frame rate and the output takes what is left. Light outputs (a few kB of JSON per
frame) keep the pipeline's priority, so that they keep up with it.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

from edgepose.core.errors import ConfigError, describe_error
from edgepose.core.latest import LatestBox
from edgepose.outputs.base import FrameResult, Output

log = logging.getLogger(__name__)
#: a connection that breaks within this many seconds of being made belongs to the
#: outage before it: no new warning, no backoff reset (a peer answering garbage)
STABLE_S = 5.0


class Backoff:
    """Waits between reconnection attempts: ``initial``, doubling up to ``maximum``."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def next(self) -> float:
        wait, self._next = self._next, min(self._next * 2.0, self.maximum)
        return wait

    def reset(self) -> None:
        self._next = self.initial


def parse_url(spec: str, schemes: Sequence[str], form: str, *, default_port: int | None = None,
              need_path: bool = False) -> SplitResult:
    """``spec`` split as a URL with a host and a valid port, or one ``ConfigError`` line
    naming the spec and the expected ``form``."""
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"output {spec}: {problem}; expected {form}")

    url = urlsplit(spec)
    if url.scheme.lower() not in schemes:
        raise bad("the scheme is not " + " or ".join(f"{s}://" for s in schemes))
    if not url.hostname:
        raise bad("no host")
    try:
        port = url.port
    except ValueError:
        raise bad("the port is not a number from 1 to 65535") from None
    if port is None and default_port is None:
        raise bad("no port")
    if port == 0:
        raise bad("port 0 is not a port to send to")
    if need_path and url.path.strip("/") == "":
        raise bad("no path")
    return url


#: how much nicer than the pipeline the threads of a heavy output run (the live view
#: encodes JPEGs): on a busy machine they give way, so the pipeline keeps its CPU
NICENESS = 10


def lower_priority(niceness: int = NICENESS) -> None:
    """Make the calling thread ``niceness`` nicer than it is (Linux: nice is per thread,
    and threads it starts inherit it; a run started with ``nice`` stays below its
    pipeline, not at the absolute value); silently nothing where that is not possible."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except (AttributeError, OSError):
        pass


def import_net(module: str, package: str, what: str) -> Any:
    """``module`` from the ``net`` extra, or a ``ConfigError`` naming how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} need the {package} package: pip install 'edgepose[net]' "
                          f"(or pip install {package})") from None


def url_port(url: SplitResult, default: int) -> int:
    return url.port if url.port is not None else default


class BackgroundOutput(Output):
    """A non-blocking output whose peer is served by its own thread (module docstring)."""

    blocking = False
    #: first and longest wait (s) between reconnection attempts
    retry_initial = 0.5
    retry_max = 30.0
    #: how long close() lets the thread finish before aborting the connection (s)
    close_timeout = 1.0
    #: nice increment of the thread (0: the pipeline's priority; see the module docstring)
    niceness = 0

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        self._slot: LatestBox[FrameResult] = LatestBox()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = 0             # taken, then not sent because the peer failed
        self.outages = 0           # times the peer became unreachable
        self.last_error: str | None = None
        self.connected_at: float | None = None  # monotonic time of the last (re)connection
        self._failing = False
        self._flapping = False     # the last outage came back within STABLE_S: quiet retries

    # -- the pipeline's side --------------------------------------------------------

    def open(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"edgepose-{self.kind}", daemon=True)
        self._thread.start()

    def write(self, result: FrameResult) -> None:
        """Hand ``result`` to the thread; never waits."""
        self._slot.put(result)
        self._count_dropped()

    def _count_dropped(self) -> None:
        self.dropped = self._slot.dropped + self._lost

    def close(self) -> None:
        """Stop the thread: what is pending is sent if the peer is there; bounded in time."""
        thread, self._thread = self._thread, None
        self._stop.set()
        self._slot.close()
        if thread is None:
            return
        thread.join(self.close_timeout * 0.6)
        if thread.is_alive():
            try:
                self._abort()
            except Exception as err:  # best effort: the thread is a daemon anyway
                log.debug("%s: abort failed: %s", self.spec, err)
            thread.join(self.close_timeout * 0.4)
            if thread.is_alive():
                log.warning("%s: still busy after %.1f s at shutdown; left behind", self.spec,
                            self.close_timeout)
        self._count_dropped()

    def summary(self) -> str:
        text = super().summary()
        if self.outages:
            text += f", unreachable {self.outages} time(s)"
            if self._failing and self.last_error:
                text += f" (now: {self.last_error})"
        return text

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        """The thread: whatever goes wrong in it is one log line, never a traceback."""
        try:
            self._serve()
        except Exception as err:
            self.last_error = describe_error(err)
            log.error("%s: the output stopped (%s); the run goes on without it", self.spec,
                      self.last_error)
            log.debug("traceback", exc_info=True)
            try:
                self._abort()
            except Exception as abort_err:
                log.debug("%s: abort failed: %s", self.spec, abort_err)

    def _serve(self) -> None:
        if self.niceness:
            lower_priority(self.niceness)
        backoff = Backoff(self.retry_initial, self.retry_max)
        connected = False
        while not self._stop.is_set():
            if not connected:
                try:
                    self._connect()
                except Exception as err:
                    if self._ended_by_close("connecting", err):
                        break
                    self._failed(err)
                    self._stop.wait(backoff.next())
                    continue
                connected = True
                self._connected()
            item = self._slot.take(timeout=0.1)
            try:
                if item is None:
                    self._idle()
                    continue
                self._send(item)
            except Exception as err:
                if item is not None:
                    self._lost += 1
                if self._ended_by_close("sending", err):
                    connected = False
                    break
                self._failed(err)
                connected = False
                self._drop()
                self._stop.wait(backoff.next())
                continue
            self.written += 1
            if self._flapping and time.monotonic() - (self.connected_at or 0.0) >= STABLE_S:
                self._flapping = False
            if not self._flapping:
                backoff.reset()
        self._finish(connected)

    def _finish(self, connected: bool) -> None:
        """Send what is pending (the run's last frame), then say goodbye."""
        if not connected:
            if self._slot.take(timeout=0) is not None:
                self._lost += 1  # the run's last frame, with no peer to take it
            try:  # end any attempt still under way (paho's own retry thread included)
                self._abort()
            except Exception as err:
                log.debug("%s: ending the connection attempt: %s", self.spec, err)
            return
        item = self._slot.take(timeout=0)
        try:
            if item is not None:
                self._send(item)
                self.written += 1
        except Exception as err:
            self._lost += 1
            log.debug("%s: last frame not sent: %s", self.spec, err)
        try:
            self._disconnect()
        except Exception as err:
            log.debug("%s: disconnect failed: %s", self.spec, err)

    def _ended_by_close(self, what: str, err: BaseException) -> bool:
        """True, with one debug line, when ``err`` came while close() ended the thread:
        an attempt or a send cut short at shutdown is no outage to warn about."""
        if not self._stop.is_set():
            return False
        log.debug("%s: %s ended by close: %s", self.spec, what, describe_error(err))
        return True

    def _failed(self, err: BaseException) -> None:
        message = describe_error(err)
        self.last_error = message
        if not self._failing and self.connected_at is not None and \
                time.monotonic() - self.connected_at < STABLE_S and self.outages:
            self._flapping = True  # a peer that takes a connection and breaks it at once
        if not self._failing and not self._flapping:
            self._failing = True
            self.outages += 1
            log.warning("%s: %s; the run goes on, retrying in the background", self.spec, message)
        else:
            self._failing = True
            log.debug("%s: still failing: %s", self.spec, message)

    def _connected(self) -> None:
        self.connected_at = time.monotonic()
        if self._failing:
            self._failing = False
            (log.debug if self._flapping else log.info)("%s: connected again", self.spec)

    def _drop(self) -> None:
        try:
            self._reset()
        except Exception as err:
            log.debug("%s: closing the broken connection: %s", self.spec, err)

    # -- hooks ----------------------------------------------------------------------

    def _connect(self) -> None:
        """Reach the peer (bounded by a timeout); raise on failure."""

    def _send(self, result: FrameResult) -> None:
        """Send one result; raise when the connection is lost."""
        raise NotImplementedError

    def _idle(self) -> None:
        """Called about every 0.1 s while nothing is pending (keep-alives, reads)."""

    def _disconnect(self) -> None:
        """Close the connection politely, bounded in time (on the thread, at the end)."""
        self._abort()

    def _reset(self) -> None:
        """Forget a broken connection before reconnecting (on the thread)."""
        self._abort()

    def _abort(self) -> None:
        """Close the connection at once; may be called from another thread."""
