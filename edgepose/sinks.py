"""Where per-frame results go besides the screen: JSON Lines to a file or stdout."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any, Protocol

from edgepose.errors import ConfigError
from edgepose.pose import Poses
from edgepose.sources.base import Frame


class Sink(Protocol):
    """Consumes one record per processed frame."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def frame_record(frame: Frame, poses: Poses, latency_ms: float) -> dict[str, Any]:
    """The JSON-ready record of one processed frame: index, capture time, latency, poses
    (keypoints in source pixels with scores, from ``Poses.to_records()``)."""
    height, width = frame.size
    return {
        "frame": int(frame.index),
        "timestamp": round(float(frame.timestamp), 6),
        "latency_ms": round(float(latency_ms), 3),
        "width": width,
        "height": height,
        "schema": poses.schema,
        "poses": poses.to_records(),
    }


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced (pytest capture)
        pass


class JsonLinesSink:
    """One JSON object per line, flushed per line so a reader (``tail -f``, a crash) sees
    only complete records. ``target`` is a file path or ``-`` for stdout."""

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self._owned = self.target != "-"
        if self._owned:
            try:
                self._fh: IO[str] | None = open(self.target, "w", encoding="utf-8")
            except OSError as err:
                raise ConfigError(f"--json {self.target}: cannot open for writing "
                                  f"({err.strerror}); pass a writable path or - for stdout") from None
        else:
            self._fh = sys.stdout
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            raise ValueError(f"JSON Lines sink {self.target} is closed")
        try:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()
        except BrokenPipeError:
            if not self._owned:  # the reader (`| head`) left: no complaint at exit either
                _silence_stdout()
            raise
        self.count += 1

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None and self._owned:
            fh.close()

    def __enter__(self) -> JsonLinesSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
