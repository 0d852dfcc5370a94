"""The worker process: loads models (the Edge TPU delegate included) and invokes them on
request, tensors in and out through shared memory (``edgepose.inference.worker.shm``).

The supervisor talks to it over one pipe, in order, one request at a time:

- ``("open", key, manifest, path, delegate_device, num_threads)`` -> ``("stage", key,
  what)`` before each stage of the load (the delegate, the interpreter; each stage has
  its own deadline, the first starts once the interpreter module is imported), then
  ``("opened", key, inputs, outputs)`` with the tensor details, or
  ``("failed", key, error class name, message)`` for a ModelError/DeviceError;
- ``("attach", key, shm name, layout)`` -> nothing: map the model's slot;
- ``("invoke", key)`` -> ``("done", key)`` once the outputs are in the slot, or
  ``("error", key, message)`` when the interpreter raised;
- ``("drop", key)`` -> nothing: unload the model and unmap its slot;
- ``("close",)`` or the pipe closing -> exit.

A segfault, abort or hang in the runtime is this process's end, never the caller's:
the supervisor sees the exit (or the silence) and restarts it. The worker ignores
SIGINT, SIGTERM and SIGHUP (the supervisor decides when it stops; systemd and Ctrl-C
signal the whole process group) and dies with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
from pathlib import Path
from typing import Any

from edgepose.core.errors import EdgePoseError
from edgepose.inference.worker.shm import Mapping

log = logging.getLogger("edgepose.inference.worker")

DETAIL_KEYS = ("index", "name", "shape", "dtype", "quantization")
# Messages are tuples; the two of every frame ("invoke", key) and ("done", key) travel as
# 5 bytes, everything else pickled (small: names, tensor details, error text).
_FAST = {"invoke": b"i", "done": b"d"}
_FAST_OPS = {v: k for k, v in _FAST.items()}


def encode(msg: tuple[Any, ...]) -> bytes:
    tag = _FAST.get(msg[0])
    if tag is not None:
        return tag + int(msg[1]).to_bytes(4, "little")
    return b"p" + pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> tuple[Any, ...]:
    op = _FAST_OPS.get(data[:1])
    if op is not None:
        return op, int.from_bytes(data[1:5], "little")
    return pickle.loads(data[1:])


def _become_worker(title: str) -> None:
    """Signals, process name (``/proc/PID/comm``) and death with the parent (Linux)."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    # A forkserver child inherits the server's "alive" pipe, which keeps the server (our
    # parent) running as long as the child lives; without it the server ends with
    # edgepose-run, and PR_SET_PDEATHSIG below ends a worker stuck in a C call.
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if alive is not None:
        try:
            os.close(alive)
        except OSError:
            pass
        setattr(server, "_forkserver_alive_fd", None)  # noqa: B010
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig, pr_set_name = 1, 15
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        libc.prctl(pr_set_name, title.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl: the pipe's EOF still ends the loop
        pass


def _details(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of interpreter tensor details the supervisor needs (small, picklable)."""
    return [{k: d[k] for k in DETAIL_KEYS if k in d} for d in items]


def _open(kind: str, manifest: dict[str, Any], path: str, delegate_device: str | None,
          num_threads: int | None, send: Any, key: int) -> Any:
    from edgepose.inference.engine import Engine, interpreter_module, load_edgetpu_delegate
    from edgepose.models.manifest import manifest_from_dict
    from edgepose.models.registry import ModelSpec

    interpreter_module()  # imported before the deadline starts: a slow disk is not a hang
    spec = ModelSpec(manifest_from_dict(manifest, origin=manifest.get("name", path)), Path(path))
    name = spec.manifest.name
    delegate = None
    if kind == "edgetpu":  # each stage has its own deadline: opening the USB device, then
        # building the graph on it, take up to ~3 s each on a Pi 4
        send(("stage", key, f"creating the Edge TPU delegate for {name}"))
        delegate = load_edgetpu_delegate(delegate_device)
    send(("stage", key, f"loading {name}" + (" with the Edge TPU delegate" if delegate else "")))
    return Engine(spec, kind, delegate, num_threads)


def main(conn: Any, kind: str, title: str, log_level: int) -> None:
    """Serve requests on ``conn`` until told to close or the supervisor goes away."""
    _become_worker(title)
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format=f"%(levelname)s %(name)s[{title} {os.getpid()}]: %(message)s")
    def send(msg: tuple[Any, ...]) -> None:
        conn.send_bytes(encode(msg))

    engines: dict[int, Any] = {}
    slots: dict[int, Mapping] = {}
    send(("hello", os.getpid()))
    while True:
        try:
            msg = decode(conn.recv_bytes())
        except (EOFError, OSError):
            break
        op = msg[0]
        key: int = msg[1] if len(msg) > 1 else -1
        if op == "invoke":
            slot = slots[key]
            try:
                outputs = engines[key].invoke(slot.input)
                for view, out in zip(slot.outputs, outputs):
                    view[...] = out.data
            except Exception as err:  # the interpreter's RuntimeError/ValueError, as text
                send(("error", key, f"{type(err).__name__}: {err}".splitlines()[0]))
                continue
            send(("done", key))
        elif op == "open":
            try:
                manifest, path, delegate_device, threads = msg[2:6]
                engine = _open(kind, manifest, path, delegate_device, threads, send=send, key=key)
            except EdgePoseError as err:
                send(("failed", key, type(err).__name__, str(err)))
                continue
            engines[key] = engine
            send(("opened", key, _details([engine.io.input]), _details(engine.io.outputs)))
        elif op == "attach":
            slots[key] = Mapping(msg[2], msg[3])
        elif op == "drop":
            engines.pop(key, None)
            if key in slots:
                slots.pop(key).close()
        elif op == "close":
            break
    for slot in slots.values():
        slot.close()
    conn.close()

