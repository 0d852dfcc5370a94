"""Keep a live source going: when it fails, reopen it with exponential backoff."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from edgepose.core.errors import SourceError
from edgepose.sources.base import Frame, Source

log = logging.getLogger(__name__)


class ReconnectingSource(Source):
    """Wraps a live source made by ``factory``; a failed ``read()`` closes it and reopens
    a fresh one after ``initial_delay`` seconds, doubling (``factor``) up to ``max_delay``.

    The first ``open()`` is not retried, so a camera that is missing at start-up is
    reported at once. Frame indices keep counting across reconnects. ``interrupt()``
    ends a backoff wait, a blocked read or a blocked reopening at once (``read()`` then
    returns None; a first ``open()`` raises ``SourceError``), so a stop stays fast.
    ``reconnects`` counts successful reopenings, ``backoffs`` the recent waits.
    """

    is_live = True

    def __init__(self, factory: Callable[[], Source], *, initial_delay: float = 0.5,
                 max_delay: float = 10.0, factor: float = 2.0) -> None:
        super().__init__()
        if initial_delay <= 0 or max_delay < initial_delay or factor < 1:
            raise ValueError("need 0 < initial_delay <= max_delay and factor >= 1")
        self.factory = factory
        self.initial_delay, self.max_delay, self.factor = initial_delay, max_delay, factor
        self.reconnects = 0
        self.backoffs: deque[float] = deque(maxlen=64)  # the recent waits, in seconds
        self._inner: Source | None = None

    def open(self) -> None:
        self._inner = self._open_inner()
        self.name = self._inner.name

    def _open_inner(self) -> Source:
        """A fresh inner source, opened; kept in ``_inner`` while it opens, so that
        ``interrupt()`` reaches a blocked ``open()`` too."""
        inner = self.factory()
        self._inner = inner
        try:
            if self._interrupt.is_set():
                inner.interrupt()
            inner.open()
        except BaseException:
            self._inner = None
            raise
        return inner

    def read(self) -> Frame | None:
        delay = self.initial_delay
        while not self._interrupt.is_set():
            if self._inner is not None:
                try:
                    frame = self._inner.read()
                except SourceError as err:
                    log.warning("%s failed: %s; reconnecting in %.1f s", self.name, err, delay)
                else:
                    if frame is not None:
                        return self._frame(frame.image, frame.timestamp, name=frame.name,
                                           error=frame.error)
                    if self._interrupt.is_set():
                        break
                    log.warning("%s ended; reconnecting in %.1f s", self.name, delay)
                self._drop_inner()
            if self._interrupt.wait(delay):
                break
            self.backoffs.append(delay)
            delay = min(delay * self.factor, self.max_delay)
            try:
                self._open_inner()
            except SourceError as err:
                if self._interrupt.is_set():
                    break
                log.warning("reopening %s failed: %s; next try in %.1f s", self.name, err, delay)
                continue
            self.reconnects += 1
            log.info("%s reconnected", self.name)
        return None

    @property
    def frame_rate(self) -> float:
        """The open inner source's own frame rate (0 when unknown)."""
        return float(getattr(self._inner, "frame_rate", 0.0) or 0.0)

    def interrupt(self) -> None:
        super().interrupt()
        inner = self._inner
        if inner is not None:
            inner.interrupt()

    def _drop_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            try:
                inner.close()
            except Exception as err:  # a broken device may fail to close; keep going
                log.debug("closing %s failed: %s", self.name, err)

    def close(self) -> None:
        self._drop_inner()
