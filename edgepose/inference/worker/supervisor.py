"""The supervisor: models run in worker processes, one per device (one process owns the
USB Edge TPU), behind engines that look like ``edgepose.inference.engine.Engine``.

``Supervisor.open_engine`` has the signature of ``edgepose.inference.engine.open_engine`` and is
the ``opener`` of ``edgepose.estimators.factory.open_estimator``: every model of an estimator
lands in the same worker. Frames are prepared and poses decoded in this process; only
the invoke crosses over (``edgepose.inference.worker.process``).

When a worker crashes, hangs or its runtime raises, one log line says what happened
and the likely cause, and the frame in flight is retried, so none is lost:

- ``auto``: the models' CPU twins take over in the CPU worker at once; the Edge TPU is
  retried in the background with exponential backoff and the run moves back when it
  answers (a model loaded and a test invoke done);
- ``edgetpu`` (strict) or ``cpu``: the worker is restarted with backoff, the first time
  at once; after ``max_restarts`` failed restarts in a row the invoke raises
  ``DeviceError`` (``edgepose-run`` exits 1 and systemd restarts it). At start-up a
  worker that cannot load its model is an error at once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy.typing as npt

from edgepose.core.errors import DeviceError, EdgePoseError, ModelError
from edgepose.decoders.base import OutputTensor
from edgepose.inference.engine import ModelPlan, RuntimeMissing, plan_model, warn_once
from edgepose.inference.worker.lane import Hosted, Lane
from edgepose.inference.worker.policy import FAIL_OVER, FailoverPolicy
from edgepose.inference.worker.process import LOAD_TIMEOUT_S, WorkerFailure, WorkerProcess, context
from edgepose.inference.worker.remote import Outputs, Route, SupervisedEngine, takes_input_of
from edgepose.models.registry import ModelSpec

log = logging.getLogger("edgepose.inference.worker")


class Supervisor:
    """Hosts models in worker processes and keeps them running (see the module docstring).

    ``invoke_timeout`` (s) replaces the deadline derived from the median invoke when
    set; ``load_timeout`` (s) bounds each stage of loading a model (the Edge TPU
    delegate, the interpreter); ``num_threads`` is the CPU interpreters' default.
    """

    def __init__(self, *, num_threads: int | None = None, invoke_timeout: float = 0.0,
                 load_timeout: float = LOAD_TIMEOUT_S, max_restarts: int = 3) -> None:
        self.num_threads, self.invoke_timeout, self.max_restarts = num_threads, invoke_timeout, max_restarts
        self.policy = FailoverPolicy(max_restarts)
        self.load_timeout = load_timeout
        self._ctx = context()
        self._lanes: dict[tuple[str, str | None], Lane] = {}
        self._engines: list[SupervisedEngine] = []
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._retries: dict[int, threading.Thread] = {}
        self._candidates: set[WorkerProcess] = set()
        self._keys = 0
        self._pending: list[tuple[Lane, str]] = []  # see invoke()
        self._restarting: set[Lane] = set()  # lanes waiting to restart (without the lock)
        self._restarted = threading.Condition(self._lock)

    # ---- opening ---------------------------------------------------------------------

    def open_engine(self, model: str | Path, device: str = "auto", *,
                    num_threads: int | None = None, decoder: str | None = None,
                    schema: str | None = None, decoder_params: dict[str, Any] | None = None,
                    resize: str | None = None, interpolation: str | None = None,
                    delegate_loader: Any = None) -> SupervisedEngine:
        """``edgepose.inference.engine.open_engine`` with the interpreter in a worker process."""
        if delegate_loader is not None:
            raise TypeError("delegate_loader works in-process only: a worker loads libedgetpu itself")
        plan = plan_model(model, device, decoder=decoder, schema=schema, resize=resize,
                          interpolation=interpolation)
        threads = num_threads if num_threads is not None else self.num_threads
        pending: list[tuple[Lane, str]] = []
        engine = self._open(plan, threads, decoder_params, pending)
        self._restart_pending(pending)
        return engine

    def _open(self, plan: ModelPlan, threads: int | None, decoder_params: dict[str, Any] | None,
              pending: list[tuple[Lane, str]]) -> SupervisedEngine:
        with self._lock:
            self._pending = pending  # lanes to restart once the lock is released
            if self._closing.is_set():
                raise DeviceError("the inference workers are closed")
            if plan.edgetpu is None:
                lane, spec, cpu_spec = self._lane("cpu", None), plan.cpu_spec(), None
            else:
                lane, spec = self._lane("edgetpu", plan.delegate_device), plan.edgetpu
                cpu_spec = self._fallback_spec(plan)
            assert spec is not None
            if cpu_spec is None:
                route = self._host_at_start(lane, spec, threads, decoder_params)
                return self._add(SupervisedEngine(self, [route], None, threads, decoder_params))
            route = Route(lane, self._key(), decoder_params)
            engine = SupervisedEngine(self, [route], cpu_spec, threads, decoder_params)
            try:
                lane.host(Hosted(route.key, spec, threads))
            except RuntimeMissing as err:
                lane.unhost(route.key)  # no library: no background retries either
                self._start_on_cpu(engine, f"no Edge TPU ({str(err).split(';')[0]})")
            except DeviceError as err:  # no accelerator yet: it may be plugged in later
                self._start_on_cpu(engine, f"no Edge TPU ({str(err).split(';')[0]})", retry=lane)
            except WorkerFailure as failure:
                self._start_on_cpu(engine, failure.line, retry=lane)
            except BaseException:
                lane.unhost(route.key)
                raise
            return self._add(engine)

    def _fallback_spec(self, plan: ModelPlan) -> ModelSpec | None:
        """The CPU build ``auto`` falls back to (None for ``edgetpu``)."""
        try:
            return plan.cpu_spec()
        except ModelError as err:  # e.g. a twin that cannot be fetched: no fallback, say so
            log.warning("%s has no usable CPU twin (%s); an Edge TPU failure will stop the run",
                        plan.requested.manifest.name, err)
            return None

    def _host_at_start(self, lane: Lane, spec: ModelSpec, threads: int | None,
                       decoder_params: dict[str, Any] | None) -> Route:
        """Load a model with no fallback: any failure is an error now, in one line."""
        route = Route(lane, self._key(), decoder_params)
        try:
            lane.host(Hosted(route.key, spec, threads))
        except WorkerFailure as failure:
            lane.unhost(route.key)
            raise DeviceError(failure.line) from None
        except BaseException:
            lane.unhost(route.key)
            raise
        if route.io is None:
            raise DeviceError(f"{spec.manifest.name}: the worker reported no tensors")
        return route

    def _start_on_cpu(self, engine: SupervisedEngine, why: str, retry: Lane | None = None) -> None:
        """``engine``'s Edge TPU build did not load: its CPU twin runs instead (and those
        of the models already in that worker, which died with it)."""
        assert engine.cpu_spec is not None
        tail = ", retrying the Edge TPU in the background" if retry is not None else ""
        warn_once(log, "%s; running %s on the CPU%s", why, engine.cpu_spec.manifest.name, tail)
        lane = engine.routes[0].lane
        self._fail_over(lane, [engine] + self._with_fallback(lane))
        if retry is not None:
            self._retry_in_background(retry)

    def _with_fallback(self, lane: Lane) -> list[SupervisedEngine]:
        """The open engines that prefer ``lane`` and have a CPU twin to fall back to."""
        return [e for e in self._engines if e.routes[0].lane is lane and e.cpu_spec is not None]

    def _add(self, engine: SupervisedEngine) -> SupervisedEngine:
        self._engines.append(engine)
        return engine

    def _key(self) -> int:
        self._keys += 1
        return self._keys

    def _lane(self, kind: str, delegate_device: str | None) -> Lane:
        lane = self._lanes.get((kind, delegate_device))
        if lane is None:
            lane = Lane(kind, delegate_device, self._ctx, self.load_timeout)
            self._lanes[(kind, delegate_device)] = lane
        return lane

    # ---- invoking --------------------------------------------------------------------

    def invoke(self, engine: SupervisedEngine, tensor: npt.NDArray[Any]) -> list[OutputTensor]:
        """Run ``engine``'s model where it can run now; a failure is handled (logged,
        worker restarted or replaced) and the same tensor tried again. Waits before a
        restart happen without the lock, so ``close()`` and other engines are not held up."""
        while True:
            with self._lock:
                if self._closing.is_set():
                    raise DeviceError("the inference workers are closed")
                route = next((r for r in engine.routes if r.lane.up), None)
                if route is None and any(r.lane in self._restarting for r in engine.routes):
                    self._restarted.wait(timeout=1.0)  # another invoke is restarting it
                    continue
                if route is None:  # a strict lane that gave up earlier
                    raise DeviceError(f"{engine.name}: no worker is running it")
                pending: list[tuple[Lane, str]] = []
                self._pending = pending  # lanes to restart once the lock is released
                try:
                    arrays = route.lane.invoke(route.key, tensor, self.invoke_timeout)
                except WorkerFailure as failure:
                    self._failed(route.lane, failure)
                else:
                    self.policy.succeeded(route.lane)
                    io = route.io
                    assert io is not None
                    engine.ran_on(route)
                    return Outputs(io.wrap(arrays), io)
            self._restart_pending(pending)

    def _failed(self, lane: Lane, failure: WorkerFailure) -> None:
        lane.down()
        if self._closing.is_set():  # killed by close(): not a failure to report
            raise DeviceError("the inference workers are closed")
        engines = self._with_fallback(lane)
        if self.policy.on_failure(lane.kind, bool(engines)) == FAIL_OVER:
            log.warning("%s; running on the CPU meanwhile, retrying the Edge TPU in the background",
                        failure.line)
            self._fail_over(lane, engines)
            self._retry_in_background(lane)
            return
        self._schedule_restart(lane, failure.line)

    def _fail_over(self, lane: Lane, engines: list[SupervisedEngine]) -> None:
        """Run each of ``engines`` (which prefer ``lane``) on its CPU twin from now on."""
        cpu = self._lane("cpu", None)
        added = []
        for engine in engines:
            if any(r.lane is cpu for r in engine.routes):
                continue
            assert engine.cpu_spec is not None
            route = Route(cpu, self._key(), engine.decoder_params)
            cpu.hosted[route.key] = Hosted(route.key, engine.cpu_spec, engine.num_threads)
            added.append((engine, route))
        try:
            if not cpu.up:
                cpu.start()
            else:
                for _, route in added:
                    cpu.host(cpu.hosted[route.key])
        except WorkerFailure as failure:
            cpu.down()
            self._schedule_restart(cpu, failure.line)
        for engine, route in added:
            self._check_twin(engine, route)
        for engine in engines:
            engine.settle()

    def _check_twin(self, engine: SupervisedEngine, route: Route) -> None:
        """Add ``route`` to ``engine`` if a tensor prepared for its other routes fits it."""
        if route.lane.up and not takes_input_of(route.io, [r.io for r in engine.routes]):
            preferred = next(r.io for r in engine.routes if r.io is not None)
            twin = route.io.name if route.io is not None else engine.cpu_spec
            log.warning("%s and its CPU twin %s take different inputs; no CPU fallback for it",
                        preferred.name, twin)
            return
        engine.routes.append(route)

    def _schedule_restart(self, lane: Lane, line: str) -> None:
        """Under the lock: ``lane`` (down, no fallback) is restarted once the lock is
        released; meanwhile other invokes on it wait instead of failing."""
        self._pending.append((lane, line))
        self._restarting.add(lane)

    def _restart_pending(self, pending: list[tuple[Lane, str]]) -> None:
        """Restart the lanes that failed with no fallback (called without the lock)."""
        try:
            for lane, line in pending:
                self._restart(lane, line)
        finally:
            with self._lock:
                for lane, _ in pending:
                    self._restarting.discard(lane)
                self._restarted.notify_all()

    def _restart(self, lane: Lane, line: str) -> None:
        """Restart a lane with no fallback; DeviceError when the policy gives up. The wait
        before each try is outside the lock; the start itself is under it."""
        while True:
            with self._lock:
                if lane.up:  # restarted meanwhile (another engine's invoke)
                    return
                delay = self.policy.restart_delay(lane)
            if delay is None:
                raise DeviceError(f"{line}; gave up after {self.max_restarts} restarts")
            log.warning("%s; restarting it%s", line, f" in {delay:g} s" if delay else "")
            if self._closing.wait(delay):
                raise DeviceError("the inference workers are closed")
            with self._lock:
                if self._closing.is_set():
                    raise DeviceError("the inference workers are closed")
                try:
                    lane.start()
                    return
                except WorkerFailure as failure:
                    line = failure.line
                except DeviceError as err:  # e.g. the accelerator is gone now
                    line = str(err)

    # ---- the Edge TPU in the background (auto) -----------------------------------------

    def _retry_in_background(self, lane: Lane) -> None:
        thread = self._retries.get(id(lane))
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(target=self._retry, args=(lane,), daemon=True,
                                  name="edgepose-tpu-retry")
        self._retries[id(lane)] = thread
        thread.start()

    def _retry(self, lane: Lane) -> None:
        """Start the lane's worker again and again (backoff) until it loads and answers."""
        for delay in self.policy.retry_delays():
            if self._closing.wait(delay):
                return
            with self._lock:
                hosted = list(lane.hosted.values())
            worker: WorkerProcess | None = None
            try:
                worker = lane.new_worker(hosted, warm_up=True, starting=self._candidates)
            except (WorkerFailure, EdgePoseError) as err:
                log.debug("Edge TPU still unavailable (%s); next try in %.0f s", err, delay)
                continue
            with self._lock:
                if self._closing.is_set() or lane.worker is not None:  # closed, or started since
                    worker.stop()
                    return
                lane.worker = worker
                self.policy.succeeded(lane)
                names = sorted({h.spec.manifest.name for h in hosted})
                log.info("the Edge TPU answers again; %s back on it", ", ".join(names))
                for engine in self._engines:
                    if engine.routes[0].lane is lane:
                        self._check_route(engine)
                self._stop_unused_cpu()
            return

    def _check_route(self, engine: SupervisedEngine) -> None:
        route = engine.routes[0]
        if not takes_input_of(route.io, [r.io for r in engine.routes[1:]]):
            name = route.io.name if route.io is not None else engine.name
            log.warning("%s and its CPU twin take different inputs; staying on the CPU", name)
            engine.routes.pop(0)

    def _stop_unused_cpu(self) -> None:
        """Stop the CPU worker once no model prefers it (it is restarted on failover)."""
        cpu = self._lanes.get(("cpu", None))
        if cpu is None or not cpu.up:
            return
        if all(e.routes[0].lane is not cpu and e.routes[0].lane.up for e in self._engines):
            cpu.stop()

    # ---- closing ---------------------------------------------------------------------

    def release(self, engine: SupervisedEngine) -> None:
        """An engine was closed: its models leave their workers."""
        with self._lock:
            if engine in self._engines:
                self._engines.remove(engine)
                for route in engine.routes:
                    route.lane.unhost(route.key)

    def close(self) -> None:
        """Stop every worker (and background retry); safe to call twice. An invoke still
        waiting on a worker (a hang) is ended by killing that worker."""
        self._closing.set()
        for worker in list(self._candidates):
            worker.interrupt()
        if not self._lock.acquire(timeout=0.2):
            for lane in list(self._lanes.values()):
                if lane.worker is not None:
                    lane.worker.interrupt()
            self._lock.acquire()
        try:
            for lane in self._lanes.values():
                lane.stop()
            self._engines.clear()
        finally:
            self._lock.release()
        for thread in list(self._retries.values()):
            thread.join(timeout=10.0)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
