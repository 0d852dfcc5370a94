"""One worker process, seen from the supervisor: start it, open models in it, invoke
them through shared memory, and turn its death or silence into a ``WorkerFailure``."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import DeviceError, EdgePoseError, ModelError
from edgepose.inference.engine import RuntimeMissing
from edgepose.inference.tpuprobe import POWER, UNPLUGGED, describe_exit
from edgepose.inference.worker.child import decode, encode
from edgepose.inference.worker.shm import Layout, Slot
from edgepose.models.registry import ModelSpec

log = logging.getLogger("edgepose.inference.worker")

START_TIMEOUT_S = 60.0  # process start + imports, before any deadline of the runtime applies
LOAD_TIMEOUT_S = 5.0    # each stage of a load: the delegate, then the interpreter (~3 s on a Pi 4)
STOP_TIMEOUT_S = 1.0    # a clean exit after "close", then SIGKILL

LABELS = {"edgetpu": "Edge TPU worker", "cpu": "CPU worker"}

# Likely causes where edgepose.inference.tpuprobe's (for an Edge TPU child) do not fit.
MIDRUN = f"{UNPLUGGED} or {POWER}"  # an Edge TPU that already ran: not the pairing
CPU_CRASH = "a crash of the TFLite runtime on this model (another interpreter version may help)"
CPU_HUNG = "the machine is overloaded (other programs, thermal throttling) or the runtime hung"
FROM_OUTSIDE = ("SIGKILL", "SIGTERM", "SIGINT")


class WorkerFailure(Exception):
    """A worker died (a signal, an exit) or did not answer in time: ``line`` says what
    happened, while doing what, and the likely cause, in one sentence."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def describe_end(kind: str, pid: int | None, returncode: int | None, stage: str,
                 timeout: float | None = None, *, ran: bool = False) -> str:
    """One line for a worker's end: what happened, while doing what, and the likely
    cause (``ran``: the worker had invoked successfully before)."""
    end = describe_exit(returncode, timed_out=timeout is not None, timeout_s=timeout)
    cause = end.cause
    if kind == "cpu" and end.signal not in FROM_OUTSIDE:
        cause = CPU_HUNG if timeout is not None else CPU_CRASH if end.crashed else cause
    elif ran and end.signal not in FROM_OUTSIDE and end.crashed:
        cause = MIDRUN
    if not end.crashed and not cause:
        cause = "the worker could not run (see the lines above)"
    who = f"{LABELS[kind]} (pid {pid})" if pid else LABELS[kind]
    return f"{who} {end.what} while {stage}; likely cause: {cause}"


def context() -> Any:
    """Worker processes are forked from a clean single-threaded server (``forkserver``),
    never from this multi-threaded process; ``spawn`` where that is unavailable."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["edgepose.inference.worker.child"])  # numpy and edgepose, once
    return ctx


def _ensure_forkserver() -> None:
    """Start the fork server with SIGTERM, SIGHUP and SIGINT blocked (the mask survives
    exec).

    systemd stops a service by signalling its whole control group, and Ctrl-C in a
    terminal signals the whole foreground process group: the server must outlive that
    signal (SIGINT while it imports its preload would end it with a traceback) so that
    edgepose-run closes its workers itself (a worker dies with the server,
    PR_SET_PDEATHSIG), and it still ends when edgepose-run does.
    """
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()  # first: starting it unblocks SIGTERM in this thread
    stop = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class WorkerProcess:
    """A child process hosting models on one ``kind`` of device ("edgetpu" or "cpu")."""

    def __init__(self, kind: str, ctx: Any, *, load_timeout: float = LOAD_TIMEOUT_S,
                 log_level: int | None = None) -> None:
        self.kind, self.load_timeout = kind, load_timeout
        self._ctx = ctx
        self._log_level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        self._proc: Any = None
        self._conn: Any = None
        self.slots: dict[int, Slot] = {}
        self.names: dict[int, str] = {}
        self.ran: set[int] = set()  # models invoked at least once
        self.pid: int | None = None

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    def start(self) -> None:
        """Start the process and wait for its hello (``WorkerFailure`` if it never comes)."""
        from edgepose.inference.worker.child import main as child_main

        if self._ctx.get_start_method() == "forkserver":
            _ensure_forkserver()
        parent, child_end = self._ctx.Pipe(duplex=True)
        title = "edgepose-tpu" if self.kind == "edgetpu" else "edgepose-cpu"
        self._proc = self._ctx.Process(target=child_main, name=title, daemon=True,
                                       args=(child_end, self.kind, title, self._log_level))
        self._proc.start()
        child_end.close()  # our copy: the child's death must read as EOF here
        self._conn = parent
        self.pid = self._proc.pid
        self._expect("hello", START_TIMEOUT_S, "starting")

    def open(self, key: int, spec: ModelSpec, delegate_device: str | None,
             num_threads: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Load ``spec`` in the worker (with the delegate on the Edge TPU) and give it a
        shared-memory slot; returns the (input, output) tensor details. ModelError or
        DeviceError as the worker reports them; WorkerFailure when it dies or hangs."""
        name = spec.manifest.name
        what = f"loading {name}"
        self._send(("open", key, spec.manifest.to_dict(), str(spec.path), delegate_device,
                    num_threads), what)
        msg = self._expect("stage", START_TIMEOUT_S, what)
        while msg[0] == "stage":
            what = msg[2]
            msg = self._expect(("stage", "opened", "failed"), self.load_timeout, what)
        if msg[0] == "failed":
            error = {"DeviceError": DeviceError, "RuntimeMissing": RuntimeMissing,
                     "ModelError": ModelError, "FetchError": ModelError}.get(msg[2], EdgePoseError)
            raise error(msg[3])
        inputs, outputs = msg[2], msg[3]
        slot = Slot(Layout.of(inputs + outputs))
        self.slots[key], self.names[key] = slot, name
        self._send(("attach", key, slot.name, slot.layout), what)
        return inputs, outputs

    def invoke(self, key: int, tensor: npt.NDArray[Any], timeout: float) -> list[npt.NDArray[Any]]:
        """Run model ``key`` on ``tensor``; copies of its outputs. WorkerFailure when the
        worker dies, raises, or does not answer within ``timeout`` seconds."""
        slot = self.slots[key]
        what = f"invoking {self.names[key]}"
        slot.input[...] = tensor
        self._send(("invoke", key), what)
        msg = self._expect(("done", "error"), timeout, what)
        if msg[0] == "error":
            self.kill()
            cause = CPU_CRASH if self.kind == "cpu" else MIDRUN
            raise WorkerFailure(f"{self.label} (pid {self.pid}): {what} failed: {msg[2]}; "
                                f"likely cause: {cause}")
        self.ran.add(key)
        return [np.array(v) for v in slot.outputs]

    def drop(self, key: int) -> None:
        """Unload model ``key`` and free its slot."""
        slot = self.slots.pop(key, None)
        self.names.pop(key, None)
        self.ran.discard(key)
        try:
            self._send(("drop", key), "unloading a model")
        except WorkerFailure:
            pass  # a dead worker has unloaded everything
        if slot is not None:
            slot.close()

    # ---- the pipe --------------------------------------------------------------------

    def _send(self, msg: tuple[Any, ...], what: str) -> None:
        if self._conn is None:
            raise WorkerFailure(f"{self.label} is not running ({what})")
        try:
            self._conn.send_bytes(encode(msg))
        except (OSError, ValueError):  # a dead worker's pipe: say how it ended
            raise self._died(what) from None

    def _expect(self, ops: str | tuple[str, ...], timeout: float, what: str) -> tuple[Any, ...]:
        ops = (ops,) if isinstance(ops, str) else ops
        if self._proc is None:
            raise WorkerFailure(f"{self.label} is not running ({what})")
        # A dead worker's end of the pipe closes: poll() returns at once and recv sees EOF.
        if self._conn.poll(timeout):
            try:
                msg = decode(self._conn.recv_bytes())
            except (EOFError, OSError):
                raise self._died(what) from None
            if msg[0] in ops:
                return msg
            self.kill()
            raise WorkerFailure(f"{self.label} (pid {self.pid}) answered {msg[0]!r} to {what}")
        pid = self.pid
        self.kill()
        raise WorkerFailure(describe_end(self.kind, pid, None, what, timeout, ran=bool(self.ran)))

    def _died(self, what: str) -> WorkerFailure:
        self._proc.join(STOP_TIMEOUT_S)
        rc = self._proc.exitcode
        pid = self.pid
        self.kill()
        return WorkerFailure(describe_end(self.kind, pid, rc, what, ran=bool(self.ran)))

    # ---- the end ---------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to exit, SIGKILL it if it does not, free its slots."""
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send_bytes(encode(("close",)))
            except (OSError, ValueError):
                pass
            self._proc.join(STOP_TIMEOUT_S)
        self.kill()

    def interrupt(self) -> None:
        """SIGKILL the process from another thread; the thread talking to it sees the
        death and cleans up."""
        pid = self.pid
        if pid is not None and self._proc is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def kill(self) -> None:
        """SIGKILL the worker (a hung runtime ignores everything else) and free its slots."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.pid is not None:  # None: it never started
            if proc.is_alive():
                proc.kill()
            proc.join(STOP_TIMEOUT_S)
            if proc.exitcode is not None:
                proc.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for slot in self.slots.values():
            slot.close()
        self.slots.clear()
