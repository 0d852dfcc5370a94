"""A 1-slot box between two threads: the newest item wins (or, with ``block``, the
producer waits). The pipeline's stages and the network outputs are joined by these,
never by queues, so nothing grows stale."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestBox(Generic[T]):
    """A 1-slot box between two threads: ``put`` replaces the item not yet taken
    (counted in ``dropped``) or, with ``block``, waits for the slot to empty."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: T | None = None
        self._finished = False
        self._closed = False
        self.dropped = 0

    def put(self, frame: T, *, block: bool = False) -> bool:
        """Store an item; False when the box was closed (the consumer is gone)."""
        with self._cond:
            while block and self._frame is not None and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> T | None:
        """The newest item, or None after ``timeout`` s or once the producer finished."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._finished or self._closed,
                                timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def finish(self) -> None:
        """The producer has no more frames."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def close(self) -> None:
        """The consumer stopped: wake and refuse the producer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        return self._finished
