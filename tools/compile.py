"""Run Coral's ``edgetpu_compiler`` and read what it did.

Finds the compiler (``--compiler``, ``$EDGETPU_COMPILER``, then PATH), runs it with its
options, parses its stdout summary ("Model(s) compiled successfully in N ms.", memory use,
op counts) and each ``<stem>_edgetpu.log`` operation table ("Operator Count Status"),
and writes each ``_edgetpu.tflite`` manifest (device "edgetpu", ``cpu_twin`` = the CPU
model's manifest name, same decoder/schema/input). The compiler exists only for x86-64
Debian/Ubuntu.

Several models in one call are co-compiled: they share the Edge TPU's ~8 MB on-chip
parameter cache instead of reloading it whenever the device switches between them
(e.g. a person detector and a pose model). The compiler fills the cache in the order
the models are given, so list the one that runs most often first; the report shows each
model's on-chip and off-chip (streamed) parameters and the shared remainder.
The compile is stopped (its whole process group killed) after --timeout-sec, which is
also passed to the compiler's own timer (default 180 s), plus a few seconds' grace.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepose.core.errors import ModelError
from edgepose.models.manifest import Manifest, load_manifest, write_manifest
from tools.argtypes import positive_int
from tools.errors import CompilerNotFoundError, ToolError

log = logging.getLogger(__name__)

COMPILER = "edgetpu_compiler"
ENV_VAR = "EDGETPU_COMPILER"
INSTALL_HINT = (
    "edgetpu_compiler runs only on x86-64 Debian/Ubuntu: install the `edgetpu-compiler` package from "
    "Coral's apt repository (https://coral.ai/docs/edgetpu/compiler/), or run it in an x86-64 "
    "Debian/Ubuntu Docker container; or point --compiler / $EDGETPU_COMPILER at it"
)
MAPPED = "Mapped to Edge TPU"
DEFAULT_TIMEOUT_SEC = 180  # edgetpu_compiler's own default for --timeout_sec
GRACE_SEC = 3  # beyond the compiler's own timer, before we kill it

_SUMMARY = {
    "compile_ms": (r"Models? compiled successfully in (\d+) ms", int),
    "on_chip": (r"On-chip memory used for caching model parameters:\s*(\S+)", str),
    "on_chip_remaining": (r"On-chip memory remaining for caching model parameters:\s*(\S+)", str),
    "off_chip": (r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)", str),
    "subgraphs": (r"Number of Edge TPU subgraphs:\s*(\d+)", int),
    "total_ops": (r"Total number of operations:\s*(\d+)", int),
    "tpu_ops": (r"Number of operations that will run on Edge TPU:\s*(\d+)", int),
    "cpu_ops": (r"Number of operations that will run on CPU:\s*(\d+)", int),
    "operation_log": (r"Operation log:\s*(\S+)", str),
    "version": (r"Edge TPU Compiler version\s*(\S+)", str),
}
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


@dataclass(frozen=True)
class OpLogEntry:
    """One row of the compiler's operation table."""

    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == MAPPED


@dataclass
class CompileResult:
    """What the compiler did with one input model (several when co-compiled)."""

    output_models: list[Path]
    log_path: Path | None
    summary: dict[str, Any]
    ops: list[OpLogEntry] = field(default_factory=list)
    manifest_path: Path | None = None
    stdout: str = ""
    input_model: Path | None = None

    @property
    def mapped_ops(self) -> int:
        return sum(e.count for e in self.ops if e.mapped)

    @property
    def unmapped_ops(self) -> int:
        return sum(e.count for e in self.ops if not e.mapped)

    @property
    def fully_mapped(self) -> bool:
        return bool(self.ops) and self.unmapped_ops == 0

    def reasons(self) -> dict[str, list[str]]:
        """Status -> ops with that status, for the ops left on the CPU."""
        out: dict[str, list[str]] = {}
        for e in self.ops:
            if not e.mapped:
                out.setdefault(e.status, []).append(f"{e.op} x{e.count}")
        return out


def parse_size(text: str) -> int:
    """'2.72MiB' -> bytes (the compiler prints B, KiB, MiB)."""
    m = re.fullmatch(r"([\d.]+)\s*([KMG]?i?B)", text.strip())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"not a size: {text!r}")
    return int(round(float(m.group(1)) * _UNITS[m.group(2)]))


def _parse_block(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (pattern, kind) in _SUMMARY.items():
        m = re.search(pattern, text)
        if m:
            out[key] = kind(m.group(1))
    for key in ("on_chip", "on_chip_remaining", "off_chip"):
        if key in out:
            out[key + "_bytes"] = parse_size(out[key])
    out["input_models"] = re.findall(r"Input model:\s*(\S+)", text)
    out["output_models"] = re.findall(r"Output model:\s*(\S+)", text)
    return out


def parse_report(text: str) -> list[dict[str, Any]]:
    """The compiler's stdout, one summary dict per input model (its "Input model:" block,
    plus the lines all models share: version, compile time). One model when there is no block."""
    starts = [m.start() for m in re.finditer(r"^Input model:", text, re.M)]
    if not starts:
        return [_parse_block(text)]
    head = text[:starts[0]]
    tail_at = re.search(r"^Compilation child process|^Compilation succeeded", text[starts[-1]:], re.M)
    end = starts[-1] + tail_at.start() if tail_at else len(text)
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], end])]
    return [_parse_block(head + block + text[end:]) for block in blocks]


def parse_summary(text: str) -> dict[str, Any]:
    """The compiler's stdout summary as a dict (missing lines are left out); for a
    co-compilation, the first model's (see ``parse_report``)."""
    return parse_report(text)[0]


def parse_operation_log(text: str) -> list[OpLogEntry]:
    """Rows of the "Operator  Count  Status" table of ``<stem>_edgetpu.log``."""
    rows, in_table = [], False
    for line in text.splitlines():
        if re.match(r"\s*Operator\s+Count\s+Status", line):
            in_table = True
            continue
        m = re.match(r"\s*(\S+)\s+(\d+)\s+(\S.*?)\s*$", line)
        if in_table and m:
            rows.append(OpLogEntry(m.group(1), int(m.group(2)), m.group(3)))
    return rows


def find_compiler(explicit: str | Path | None = None) -> Path:
    """The compiler from ``explicit``, ``$EDGETPU_COMPILER`` or PATH; one-line error when absent."""
    for cand, where in ((explicit, "--compiler"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
        if cand:
            p = Path(cand).expanduser()
            if p.is_file() and os.access(p, os.X_OK):
                return p
            found = shutil.which(str(cand))
            if found:
                return Path(found)
            raise CompilerNotFoundError(f"{where} {cand}: no such executable; {INSTALL_HINT}")
    found = shutil.which(COMPILER)
    if not found:
        raise CompilerNotFoundError(f"{COMPILER} not found on PATH; {INSTALL_HINT}")
    return Path(found)


def _tpu_manifest(model: Path, out_model: Path) -> Manifest | None:
    sidecar = model.with_suffix(".toml")
    if not sidecar.is_file():
        log.warning("%s has no manifest (%s); not writing one for %s", model, sidecar.name, out_model.name)
        return None
    cpu = load_manifest(sidecar)
    return cpu.with_(name=out_model.stem, file=out_model.name, device="edgetpu", cpu_twin=cpu.name,
                     edgetpu_twin="", url="", sha256="", derive="", source_file="", source_url="",
                     source_sha256="",
                     description=f"{cpu.name} compiled for the Edge TPU by edgetpu_compiler")


class CompileTimeoutError(ToolError):
    """The compiler ran past --timeout-sec and was killed (a runtime failure: exit 1)."""


def _expected_outputs(model: Path, out: Path) -> list[Path]:
    return [out / f"{model.stem}_edgetpu.tflite", out / f"{model.stem}_edgetpu.log"]


def _check_output(path: Path, exe: Path, model: Path, written: list[Path]) -> None:
    """A compiler that exits 0 has still failed unless ``path`` is a TFLite model holding
    the ``edgetpu-custom-op``: then every file it wrote in this run is removed and the
    ``ToolError`` names what it wrote instead."""
    from edgepose.models.tflite_info import EDGETPU_CUSTOM_OP, read_model_info

    try:
        size = path.stat().st_size
        why = None if read_model_info(path).edgetpu else f"a TFLite model without the {EDGETPU_CUSTOM_OP}"
    except ModelError:
        why = "an empty file (0 bytes)" if size == 0 else f"{size} bytes that are not a TFLite model"
    except OSError as err:
        why = f"a file that cannot be read ({err.strerror})"
    if why is None:
        return
    for p in written:
        p.unlink(missing_ok=True)
        if p.suffix == ".tflite":
            p.with_suffix(".toml").unlink(missing_ok=True)
    raise ToolError(f"{exe} exited 0 but wrote {why} as {path.name} (removed); is it really "
                    f"edgetpu_compiler? Run it by hand on {model} to see its output")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the compiler and everything it started (its process group), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes
        pass


def _run_compiler(cmd: list[str], exe: Path, limit: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; kill the group after ``limit`` seconds."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    except OSError as err:
        raise CompilerNotFoundError(f"{exe} cannot run ({err.strerror}); {INSTALL_HINT}") from None
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CompileTimeoutError(f"{exe} did not finish within {limit:g} s and was killed") from None
    except BaseException:  # Ctrl-C: do not leave a compiler running
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def compile_models(models: Sequence[str | Path], out_dir: str | Path | None = None, *,
                   num_segments: int | None = None, compiler: str | Path | None = None,
                   extra_args: Sequence[str] = (), timeout_sec: int | None = None) -> list[CompileResult]:
    """Compile ``models`` in one compiler call (co-compiled when several) into ``out_dir``
    (default: next to the first) and parse what the compiler did, one result per model.

    The compiler is killed after ``timeout_sec`` (its own timer's value, default 180 s)
    plus ``GRACE_SEC``: a ``CompileTimeoutError``, with any partial output removed.
    """
    paths = [Path(m) for m in models]
    if not paths:
        raise ToolError("name the full-int8 CPU .tflite model(s) to compile")
    for model in paths:
        if not model.is_file():
            raise ModelError(f"model {model} not found; give the full-int8 CPU .tflite")
    stems = [p.stem for p in paths]
    clash = next((p for p in paths if stems.count(p.stem) > 1), None)
    if clash is not None:
        raise ToolError(f"two models are named {clash.name}: both would compile to {clash.stem}_edgetpu.tflite; "
                        "rename one")
    out = Path(out_dir) if out_dir else paths[0].parent
    if not out.is_dir():
        what = "is a file, not a folder" if out.exists() else "no such directory; create it first"
        raise ToolError(f"--out-dir {out}: {what}")
    if num_segments is not None and num_segments < 1:
        raise ToolError(f"--num-segments {num_segments}: expected 1 or more (one per Edge TPU)")
    if num_segments and len(paths) > 1:
        raise ToolError("--num-segments splits one model over several Edge TPUs; co-compile without it")
    exe = find_compiler(compiler)
    cmd = [str(exe), "--out_dir", str(out)]
    if num_segments:
        cmd += ["--num_segments", str(num_segments)]
    if timeout_sec is not None:
        cmd += ["--timeout_sec", str(timeout_sec)]
    cmd += [*extra_args, *(str(p) for p in paths)]
    log.info("running %s", " ".join(cmd))
    started = time.time() - 1.0  # file times may be rounded down to the second

    def fresh(p: Path) -> bool:  # written by this run, not left over from an earlier one
        return p.is_file() and p.stat().st_mtime >= started

    limit = (timeout_sec or DEFAULT_TIMEOUT_SEC) + GRACE_SEC
    try:
        proc = _run_compiler(cmd, exe, limit)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (the compiler's group is killed by now)
        for p in (p for m in paths for p in _expected_outputs(m, out) if fresh(p)):
            p.unlink(missing_ok=True)
        raise
    except CompileTimeoutError as err:
        partial = [p for m in paths for p in _expected_outputs(m, out) if fresh(p)]
        for p in partial:
            p.unlink(missing_ok=True)
        removed = f"; removed its partial {', '.join(p.name for p in partial)}" if partial else ""
        raise CompileTimeoutError(f"{err}{removed}; raise --timeout-sec, or check the model with "
                                  "`edgepose-tools check`") from None
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "no output")
        names = " ".join(str(p) for p in paths)
        raise ToolError(f"edgetpu_compiler failed on {names} (exit {proc.returncode}): {why}; "
                        f"check the model with `edgepose-tools check {paths[0]}`")
    reports = parse_report(text)
    by_input = {Path(r["input_models"][0]).name: r for r in reports if r["input_models"]}
    results = []
    for i, model in enumerate(paths):
        summary = by_input.get(model.name) or (reports[i] if i < len(reports) and not by_input else {})
        outputs = [out / Path(p).name for p in summary.get("output_models", [])] or [_expected_outputs(model, out)[0]]
        stale = [p for p in outputs if not fresh(p)]
        if stale:
            raise ToolError(f"{exe} exited 0 but did not write {stale[0]}; is it really edgetpu_compiler? "
                            f"Run it by hand on {model} to see its output")
        for p in outputs:
            _check_output(p, exe, model, [q for m in paths for q in _expected_outputs(m, out) if fresh(q)])
        log_name = summary.get("operation_log") or f"{outputs[0].stem}.log"
        log_path: Path | None = out / Path(log_name).name
        if not fresh(log_path):
            log.warning("%s wrote no operation log %s; op counts come from its summary only", exe.name, log_path.name)
            log_path = None
        ops = parse_operation_log(log_path.read_text()) if log_path else []
        manifest_path = None
        if len(outputs) == 1:
            m = _tpu_manifest(model, outputs[0])
            if m is not None:
                manifest_path = write_manifest(m, outputs[0].with_suffix(".toml"))
        results.append(CompileResult(outputs, log_path, summary, ops, manifest_path, text, model))
    return results


def compile_model(model: str | Path, out_dir: str | Path | None = None, *, num_segments: int | None = None,
                  compiler: str | Path | None = None, extra_args: Sequence[str] = (),
                  timeout_sec: int | None = None) -> CompileResult:
    """Compile one model (see ``compile_models``)."""
    return compile_models([model], out_dir, num_segments=num_segments, compiler=compiler,
                          extra_args=extra_args, timeout_sec=timeout_sec)[0]


def shared_cache(results: Sequence[CompileResult]) -> dict[str, int]:
    """On-chip parameter cache of a co-compilation: used by all models, and what remains."""
    used = sum(r.summary.get("on_chip_bytes", 0) for r in results)
    remaining = min((r.summary["on_chip_remaining_bytes"] for r in results if "on_chip_remaining_bytes" in r.summary),
                    default=0)
    return {"on_chip_bytes": used, "on_chip_remaining_bytes": remaining,
            "off_chip_bytes": sum(r.summary.get("off_chip_bytes", 0) for r in results)}


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.2f} KiB" if n >= 1024 else f"{n} B"


def format_result(r: CompileResult) -> str:
    s = r.summary
    lines = [f"compiled in {s.get('compile_ms', '?')} ms -> {', '.join(str(p) for p in r.output_models)}",
             f"on-chip parameter cache used: {s.get('on_chip', '?')}, off-chip streamed: {s.get('off_chip', '?')}; "
             f"Edge TPU subgraphs: {s.get('subgraphs', '?')}",
             f"operations: {s.get('total_ops', '?')} total, {s.get('tpu_ops', r.mapped_ops)} on the Edge TPU, "
             f"{s.get('cpu_ops', r.unmapped_ops)} on the CPU"]
    for status, ops in r.reasons().items():
        lines.append(f"  not mapped: {', '.join(ops)}: {status}")
    if r.manifest_path:
        lines.append(f"manifest: {r.manifest_path}")
    return "\n".join(lines)


def format_results(results: Sequence[CompileResult]) -> str:
    """One model: its report. Several: each model's, then the cache they share."""
    if len(results) == 1:
        return format_result(results[0])
    parts = [f"{r.input_model}:\n" + "\n".join("  " + ln for ln in format_result(r).splitlines()) for r in results]
    c = shared_cache(results)
    used = " + ".join(r.summary.get("on_chip", "?") for r in results)
    parts.append(f"co-compiled {len(results)} models: shared on-chip parameter cache {_size(c['on_chip_bytes'])} "
                 f"({used}, in the order given), {_size(c['on_chip_remaining_bytes'])} remaining; "
                 f"off-chip streamed in total: {_size(c['off_chip_bytes'])}")
    streamed = [r.input_model.name for r in results if r.summary.get("off_chip_bytes") and r.input_model]
    if streamed:
        verb = "streams" if len(streamed) == 1 else "stream"
        parts.append(f"  {', '.join(streamed)} {verb} parameters from the host on every inference; the "
                     "cache is filled in the order given, so list the model that runs most first")
    return "\n".join(parts)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compile", help="run edgetpu_compiler (co-compiling several models) and parse its report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="+",
                   help="the full-int8 CPU .tflite or a registered model name; several are co-compiled to share "
                        "the on-chip cache")
    p.add_argument("--out-dir", type=Path, help="output directory (default: next to the first model; the current "
                                                "folder for a registered name)")
    p.add_argument("--num-segments", type=positive_int, help="split into N segments for pipelining on N Edge TPUs")
    p.add_argument("--compiler", help=f"path to edgetpu_compiler (default: ${ENV_VAR}, then PATH)")
    p.add_argument("--show-operations", action="store_true", help="compiler -s: print the operation log")
    p.add_argument("--min-runtime-version", type=positive_int, help="compiler -m: lowest Edge TPU runtime to support")
    p.add_argument("--intermediate-tensors", help="compiler -a: comma-separated tensor names to output")
    p.add_argument("--search-delegate", action="store_true", help="compiler -d: search for the largest mappable graph")
    p.add_argument("--delegate-search-step", type=positive_int, help="compiler -k: step size for --search-delegate")
    p.add_argument("--timeout-sec", type=positive_int,
                   help=f"compiler -t, and the compile is killed {GRACE_SEC} s after it "
                        f"(default: the compiler's {DEFAULT_TIMEOUT_SEC} s)")
    p.add_argument("--compiler-arg", action="append", default=[], help="any other compiler argument (repeatable)")
    p.set_defaults(func=run)


def _passthrough(args: argparse.Namespace) -> list[str]:
    extra = []
    if args.show_operations:
        extra.append("--show_operations")
    if args.search_delegate:
        extra.append("--search_delegate")
    for flag, value in (("--min_runtime_version", args.min_runtime_version),
                        ("--intermediate_tensors", args.intermediate_tensors),
                        ("--delegate_search_step", args.delegate_search_step)):
        if value is not None:
            extra += [flag, str(value)]
    return extra + list(args.compiler_arg)


def run(args: argparse.Namespace) -> int:
    from edgepose.models.registry import is_model_path
    from tools.argtypes import model_file

    models = [model_file(m) for m in args.model]
    out_dir = args.out_dir or (None if is_model_path(args.model[0]) else Path.cwd())  # never into the model cache
    try:
        results = compile_models(models, out_dir, num_segments=args.num_segments, compiler=args.compiler,
                                 extra_args=_passthrough(args), timeout_sec=args.timeout_sec)
    except CompileTimeoutError as err:  # the compiler failed at run time, not the input: exit 1
        sys.stderr.write(f"edgepose-tools: error: {err}\n")
        return 1
    print(format_results(results))
    return 0
