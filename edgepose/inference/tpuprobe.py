"""One real Edge TPU invoke in a child process, and what a child process's end means.

A libedgetpu built against another TensorFlow than the interpreter crashes inside
``tflite_plugin_create_delegate`` (SIGSEGV) or never returns from it; in-process that
takes the caller down with it. ``probe_edgetpu`` runs load_delegate + Interpreter +
one invoke in ``python -m edgepose.inference.tpuprobe MODEL`` under a timeout, so ``edgepose
doctor`` can name the crash instead of dying of it. ``describe_exit`` turns any child's
end (a signal, an exit code, a timeout) into one line with its likely cause; the
inference worker uses it too.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Likely causes, by how an Edge TPU child ended.
PAIRING = ("libedgetpu built against another TensorFlow than the interpreter (runtime pairing: "
           "rerun deploy/install-pi.sh for this OS's pair)")
UNPLUGGED = "the accelerator unplugged or reset mid-call"
POWER = "a USB power drop (under-voltage; on a Pi 5 a 3 A supply limits USB to 600 mA)"
CAUSES = {
    "SIGSEGV": f"{PAIRING}; less often {UNPLUGGED} or {POWER}",
    "SIGBUS": f"{PAIRING}; less often {UNPLUGGED} or {POWER}",
    "SIGILL": f"{PAIRING} or a wheel built for another CPU",
    "SIGABRT": f"a failed check inside libedgetpu or TFLite: {PAIRING}, {UNPLUGGED}, or {POWER}",
    "SIGKILL": "killed from outside: the kernel's out-of-memory killer (see `dmesg`) or a supervisor",
    "SIGTERM": "stopped from outside (a supervisor, systemd, or kill)",
    "SIGINT": "interrupted (Ctrl-C)",
}
HUNG = f"an Edge TPU call that never returned: {UNPLUGGED}, {POWER}, or {PAIRING}"


@dataclass(frozen=True)
class ChildExit:
    """How a child ended: ``crashed`` for a signal, an abort or a hang; ``what`` and
    ``cause`` are short phrases, ``line`` both in one sentence for a log."""

    crashed: bool
    what: str
    cause: str
    signal: str = ""

    @property
    def line(self) -> str:
        return f"{self.what}; likely cause: {self.cause}" if self.cause else self.what


def describe_exit(returncode: int | None, *, timed_out: bool = False,
                  timeout_s: float | None = None) -> ChildExit:
    """What a child's return code (subprocess/multiprocessing style: -N for signal N;
    128+N as a shell reports it) or a timeout means."""
    if timed_out:
        within = f" within {timeout_s:g} s" if timeout_s is not None else ""
        return ChildExit(True, f"no answer{within} (hung)", HUNG, "")
    if returncode is None:
        return ChildExit(False, "still running", "")
    signum = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 128 + 65 else 0
    if signum:
        try:
            name = signal.Signals(signum).name
            text = signal.strsignal(signum) or name
        except ValueError:
            name, text = f"signal {signum}", f"signal {signum}"
        return ChildExit(True, f"killed by {name} ({text.lower()})",
                         CAUSES.get(name, "the runtime died of a signal"), name)
    if returncode == 0:
        return ChildExit(False, "exited normally", "")
    return ChildExit(False, f"exited with code {returncode}", "")


@dataclass(frozen=True)
class ProbeResult:
    """``outcome`` "ok" (``invoke_ms`` set), "error" (the child reported ``error``: no
    runtime or device, or a model the delegate cannot run), or "crash" (``exit`` says how)."""

    outcome: str
    invoke_ms: float | None = None
    error: str = ""
    exit: ChildExit | None = None


def probe_edgetpu(model: Path, device: str | None = None, *, timeout: float = 30.0,
                  env: Mapping[str, str] | None = None) -> ProbeResult:
    """Load libedgetpu, build the interpreter for the Edge TPU ``model`` and invoke it once,
    in a child process that is killed after ``timeout`` seconds."""
    cmd = [sys.executable, "-m", "edgepose.inference.tpuprobe", str(model)] + (["--device", device] if device else [])
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired:
        return ProbeResult("crash", exit=describe_exit(None, timed_out=True, timeout_s=timeout))
    report = None
    for line in reversed(run.stdout.splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                pass
            break
    if isinstance(report, dict) and run.returncode in (0, 3):
        if report.get("ok"):
            return ProbeResult("ok", invoke_ms=float(report.get("invoke_ms", 0.0)))
        return ProbeResult("error", error=str(report.get("error", "")))
    exit_ = describe_exit(run.returncode)
    if exit_.crashed:
        return ProbeResult("crash", exit=exit_)
    last = (run.stderr.strip().splitlines() or [exit_.what])[-1]
    return ProbeResult("error", error=f"probe {exit_.what}: {last}")


def _invoke_once(model: Path, device: str | None) -> dict[str, object]:
    import numpy as np

    from edgepose.core.errors import DeviceError
    from edgepose.inference.engine import interpreter_module, load_edgetpu_delegate

    try:
        delegate = load_edgetpu_delegate(device)
    except DeviceError as err:
        return {"ok": False, "error": str(err)}
    try:
        it = interpreter_module().Interpreter(model_path=str(model), experimental_delegates=[delegate])
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
        t0 = time.perf_counter()
        it.invoke()
        ms = (time.perf_counter() - t0) * 1e3
    except (ValueError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return {"ok": False, "error": f"{model.name} did not run with the Edge TPU delegate: {first}"}
    return {"ok": True, "invoke_ms": ms}


def main(argv: Sequence[str] | None = None) -> int:
    """The child: print one JSON line; exit 0 when the invoke ran, 3 when it reported an error."""
    p = argparse.ArgumentParser(prog="python -m edgepose.inference.tpuprobe", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="an Edge TPU (_edgetpu.tflite) model")
    p.add_argument("--device", help="the delegate's device option (usb, pci, :0, ...)")
    args = p.parse_args(argv)
    report = _invoke_once(args.model, args.device)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 3


if __name__ == "__main__":
    sys.exit(main())
