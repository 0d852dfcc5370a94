"""A lane: one device's worker process and the models it hosts, started, restarted and
invoked as a whole, with the invoke deadline derived from each model's median round trip."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.inference.worker.process import WorkerFailure, WorkerProcess
from edgepose.models.registry import ModelSpec

FIRST_INVOKE_S = 5.0                       # a fresh worker's first invoke (weights upload, warm-up)
MIN_DEADLINE_S, MAX_DEADLINE_S = 2.0, 4.0  # bounds of the deadline derived from the median
DEADLINE_FACTOR = 10.0                     # ... which is this many median invokes


def invoke_deadline(samples: Sequence[float], *, first: bool, fixed: float = 0.0) -> float:
    """Seconds to wait for one invoke: ``FIRST_INVOKE_S`` (or ``fixed`` if longer) for a
    model's first on a worker (the Edge TPU uploads its weights then); else ``fixed`` when
    set; else ``DEADLINE_FACTOR`` median invokes, kept within
    ``MIN_DEADLINE_S``..``MAX_DEADLINE_S`` (3 medians for a model slower than that)."""
    if first:
        return max(FIRST_INVOKE_S, fixed)
    if fixed:
        return fixed
    if not samples:
        return FIRST_INVOKE_S
    median = statistics.median(samples)
    return max(MIN_DEADLINE_S, min(DEADLINE_FACTOR * median, max(MAX_DEADLINE_S, 3 * median)))


@dataclass
class Hosted:
    """A model a lane loads into each worker it starts."""

    key: int
    spec: ModelSpec
    num_threads: int | None


class Lane:
    """One device's worker and the models it hosts; started and restarted as a whole."""

    def __init__(self, kind: str, delegate_device: str | None, ctx: Any, load_timeout: float) -> None:
        self.kind, self.delegate_device, self._ctx = kind, delegate_device, ctx
        self.load_timeout = load_timeout
        self.worker: WorkerProcess | None = None
        self.hosted: dict[int, Hosted] = {}
        self.details: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self.times: dict[int, deque[float]] = {}  # invoke round trips (s) by model

    @property
    def up(self) -> bool:
        return self.worker is not None

    def new_worker(self, hosted: Sequence[Hosted], *, warm_up: bool = False,
                   starting: set[WorkerProcess] | None = None) -> WorkerProcess:
        """A started worker with ``hosted`` loaded (and invoked once on zeros when
        ``warm_up``); the half-started one is killed when anything fails. While it
        starts it is in ``starting`` (so that a closing supervisor can end it)."""
        worker = WorkerProcess(self.kind, self._ctx, load_timeout=self.load_timeout)
        if starting is not None:
            starting.add(worker)
        try:
            worker.start()
            for h in hosted:
                self.details[h.key] = worker.open(h.key, h.spec, self.delegate_device, h.num_threads)
                if warm_up:
                    inp = self.details[h.key][0][0]
                    worker.invoke(h.key, np.zeros(inp["shape"], inp["dtype"]), FIRST_INVOKE_S)
        except BaseException:
            worker.kill()
            raise
        finally:
            if starting is not None:
                starting.discard(worker)
        return worker

    def start(self) -> None:
        self.worker = self.new_worker(list(self.hosted.values()))

    def host(self, h: Hosted) -> None:
        """Load one more model (or one already listed): in the running worker, or by
        starting one."""
        self.hosted[h.key] = h
        if self.worker is None:
            self.start()
            return
        try:
            self.details[h.key] = self.worker.open(h.key, h.spec, self.delegate_device, h.num_threads)
        except WorkerFailure:
            self.worker = None  # it died loading this model: the lane is down
            raise

    def unhost(self, key: int) -> None:
        """Forget a model (its engine was closed); a worker left with none stops."""
        self.hosted.pop(key, None)
        self.details.pop(key, None)
        self.times.pop(key, None)
        if self.worker is not None:
            if self.hosted:
                self.worker.drop(key)
            else:
                self.stop()

    def invoke(self, key: int, tensor: npt.NDArray[Any], fixed: float) -> list[npt.NDArray[Any]]:
        """One invoke of model ``key``; its first on a worker gets a generous deadline."""
        assert self.worker is not None
        first = key not in self.worker.ran
        times = self.times.setdefault(key, deque(maxlen=100))
        t0 = time.monotonic()
        arrays = self.worker.invoke(key, tensor, invoke_deadline(times, first=first, fixed=fixed))
        if not first:
            times.append(time.monotonic() - t0)
        return arrays

    def down(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.kill()

    def stop(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()
