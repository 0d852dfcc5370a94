"""The ``Output`` interface: where each processed frame's result goes besides the screen.

An output is made from the spec the user wrote (a path, ``-``, or a URL) and lives
through four steps, so that a run never damages anything before it has really started:

1. ``__init__(spec)`` parses the spec; no side effects.
2. ``check()`` validates everything it can without side effects (folder exists and is
   writable, URL well formed, port a number) and raises ``ConfigError`` naming the spec
   and the fix. The run checks every output before it opens any. Once the source is
   open, ``set_frame_rate(fps)`` tells each output the source's frame rate.
3. ``open()`` acquires what the output needs (a lock, a connection thread). A file
   output does not create or truncate its file here: that happens at the first
   ``write``, so a run that fails to start leaves existing files untouched.
4. ``write(result)`` once per processed frame, then ``close()`` (flush, finalise;
   idempotent, also after a failure).

``blocking`` outputs (files) are written in frame order and drop nothing; the pipeline
runs them on one writer thread. Non-blocking outputs (network streams) must return from
``write`` at once: they hand the newest result to their own thread and count what they
drop. A blocking output that fails mid-run raises ``OutputError``: the pipeline logs that
one line, closes the output (what was written stays valid) and the run exits 1 at its end.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses


@dataclass(frozen=True)
class FrameResult:
    """One processed frame as every output sees it.

    - ``record``: the JSON-ready record (``edgepose.outputs.records.frame_record``), the
      same dict for every output; do not modify it.
    - ``image``: the source frame, (H, W, 3) RGB uint8, mirrored if the run mirrors;
      shared, so read it, never write into it.
    - ``poses``: the poses in source pixels, after filters.
    """

    record: dict[str, Any]
    image: npt.NDArray[np.uint8]
    poses: Poses


class Output(ABC):
    """One destination for per-frame results (see the module docstring for the steps)."""

    #: a short name for messages and ``--help`` ("jsonl", "mp4", "ws", "mqtt", "osc")
    kind: ClassVar[str] = "output"
    #: True: written in order on the writer thread, nothing dropped (files)
    blocking: ClassVar[bool] = True

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.written = 0      # results written (or sent) successfully
        self.dropped = 0      # results replaced before they could be sent (non-blocking)
        self.error: str | None = None  # the failure that stopped this output, if any

    def check(self) -> None:  # noqa: B027  (optional hook: most outputs have nothing to check)
        """Raise ``ConfigError`` if this output cannot work; no side effects."""

    def set_frame_rate(self, fps: float) -> None:  # noqa: B027  (optional hook)
        """The source's frames per second, known once it is open, before ``open()``; an
        output whose file has a rate (a recording) takes it, the others ignore it."""

    @abstractmethod
    def open(self) -> None:
        """Acquire locks, connections, threads. Must not truncate an existing file."""

    @abstractmethod
    def write(self, result: FrameResult) -> None:
        """Take one frame's result; ``OutputError`` when a blocking output fails."""

    @abstractmethod
    def close(self) -> None:
        """Flush and finalise; safe to call twice and after a failure."""

    def summary(self) -> str:
        """One line for the end of the run: what this output holds."""
        text = f"{self.spec}: {self.written} frame(s)"
        if self.dropped:
            text += f", {self.dropped} dropped"
        if self.error:
            text += f", stopped: {self.error}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"
