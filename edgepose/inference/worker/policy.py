"""The failover policy: pure decisions, no processes. Which device a failed model runs on
next, when restarting a worker gives up, how long to wait before each restart and each
background retry of the Edge TPU. ``Supervisor`` asks; ``Lane`` and ``WorkerProcess``
carry it out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

RESTART_DELAYS_S = (0.0, 1.0, 2.0, 4.0, 8.0)  # strict restarts in a row: the first at once
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 60.0     # background Edge TPU retries (auto)

FAIL_OVER, RESTART = "fail over", "restart"


@dataclass
class FailoverPolicy:
    """``max_restarts`` failed restarts in a row of one lane and it gives up; a success on
    that lane starts the count again."""

    max_restarts: int = 3
    restart_delays: tuple[float, ...] = RESTART_DELAYS_S
    retry_first: float = RETRY_FIRST_S
    retry_max: float = RETRY_MAX_S
    _failures: dict[object, int] = field(default_factory=dict, repr=False)

    @staticmethod
    def on_failure(kind: str, has_fallback: bool) -> str:
        """What to do when a lane's worker fails: an Edge TPU lane whose models have CPU
        twins fails over to them (``FAIL_OVER``); anything else restarts (``RESTART``)."""
        return FAIL_OVER if kind == "edgetpu" and has_fallback else RESTART

    def restart_delay(self, lane: object) -> float | None:
        """Count one more failure of ``lane``: the seconds to wait before restarting it,
        or None when it has failed ``max_restarts`` restarts in a row (give up)."""
        n = self._failures.get(lane, 0) + 1
        self._failures[lane] = n
        if n > self.max_restarts:
            return None
        return self.restart_delays[min(n, len(self.restart_delays)) - 1]

    def succeeded(self, lane: object) -> None:
        """``lane`` invoked (or started and answered): its count starts again."""
        self._failures.pop(lane, None)

    def failures(self, lane: object) -> int:
        return self._failures.get(lane, 0)

    def retry_delays(self) -> Iterator[float]:
        """Waits between background tries of the Edge TPU: doubling up to ``retry_max``."""
        delay = self.retry_first
        while True:
            yield delay
            delay = min(2 * delay, self.retry_max)
