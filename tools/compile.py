"""Run Coral's ``edgetpu_compiler`` and read what it did.

Finds the compiler (``--compiler``, ``$EDGETPU_COMPILER``, then PATH), runs it with its
options, parses its stdout summary ("Model compiled successfully in N ms.", memory use,
op counts) and its ``<stem>_edgetpu.log`` operation table ("Operator Count Status"),
and writes the ``_edgetpu.tflite`` manifest (device "edgetpu", ``cpu_twin`` = the CPU
model's manifest name, same decoder/schema/input). The compiler exists only for x86-64
Debian/Ubuntu.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgepose.errors import ModelError
from edgepose.manifest import Manifest, load_manifest, write_manifest
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

_SUMMARY = {
    "compile_ms": (r"Model compiled successfully in (\d+) ms", int),
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
    output_models: list[Path]
    log_path: Path | None
    summary: dict[str, Any]
    ops: list[OpLogEntry] = field(default_factory=list)
    manifest_path: Path | None = None
    stdout: str = ""

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


def parse_summary(text: str) -> dict[str, Any]:
    """The compiler's stdout summary as a dict (missing lines are left out)."""
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
                     edgetpu_twin="", url="", sha256="",
                     description=f"{cpu.name} compiled for the Edge TPU by edgetpu_compiler")


def compile_model(model: str | Path, out_dir: str | Path | None = None, *, num_segments: int | None = None,
                  compiler: str | Path | None = None, extra_args: Sequence[str] = (),
                  timeout: float | None = None) -> CompileResult:
    """Compile ``model`` into ``out_dir`` (default: next to it) and parse what the compiler did."""
    model = Path(model)
    if not model.is_file():
        raise ModelError(f"model {model} not found; give the full-int8 CPU .tflite")
    out = Path(out_dir) if out_dir else model.parent
    if not out.is_dir():
        what = "is a file, not a folder" if out.exists() else "no such directory; create it first"
        raise ToolError(f"--out-dir {out}: {what}")
    if num_segments is not None and num_segments < 1:
        raise ToolError(f"--num-segments {num_segments}: expected 1 or more (one per Edge TPU)")
    exe = find_compiler(compiler)
    cmd = [str(exe), "--out_dir", str(out)]
    if num_segments:
        cmd += ["--num_segments", str(num_segments)]
    cmd += [*extra_args, str(model)]
    log.info("running %s", " ".join(cmd))
    started = time.time() - 1.0  # file times may be rounded down to the second
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{exe} did not finish within {timeout} s; raise --timeout-sec") from None
    except OSError as err:
        raise CompilerNotFoundError(f"{exe} cannot run ({err.strerror}); {INSTALL_HINT}") from None
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "no output")
        raise ToolError(f"edgetpu_compiler failed on {model} (exit {proc.returncode}): {why}; "
                        f"check the model with `edgepose-tools check {model}`")
    summary = parse_summary(text)
    outputs = [out / Path(p).name for p in summary["output_models"]] or [out / f"{model.stem}_edgetpu.tflite"]

    def fresh(p: Path) -> bool:  # written by this run, not left over from an earlier one
        return p.is_file() and p.stat().st_mtime >= started

    stale = [p for p in outputs if not fresh(p)]
    if stale:
        raise ToolError(f"{exe} exited 0 but did not write {stale[0]}; is it really edgetpu_compiler? "
                        f"Run it by hand on {model} to see its output")
    log_name = summary.get("operation_log") or f"{outputs[0].stem}.log"
    log_path: Path | None = out / Path(log_name).name
    if log_path is not None and not fresh(log_path):
        log.warning("%s wrote no operation log %s; op counts come from its summary only", exe.name, log_path.name)
        log_path = None
    ops = parse_operation_log(log_path.read_text()) if log_path else []
    manifest_path = None
    if len(outputs) == 1:
        m = _tpu_manifest(model, outputs[0])
        if m is not None:
            manifest_path = write_manifest(m, outputs[0].with_suffix(".toml"))
    return CompileResult(outputs, log_path, summary, ops, manifest_path, text)


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


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compile", help="run edgetpu_compiler and parse its report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="the full-int8 CPU .tflite")
    p.add_argument("--out-dir", type=Path, help="output directory (default: next to the model)")
    p.add_argument("--num-segments", type=positive_int, help="split into N segments for pipelining on N Edge TPUs")
    p.add_argument("--compiler", help=f"path to edgetpu_compiler (default: ${ENV_VAR}, then PATH)")
    p.add_argument("--show-operations", action="store_true", help="compiler -s: print the operation log")
    p.add_argument("--min-runtime-version", type=positive_int, help="compiler -m: lowest Edge TPU runtime to support")
    p.add_argument("--intermediate-tensors", help="compiler -a: comma-separated tensor names to output")
    p.add_argument("--search-delegate", action="store_true", help="compiler -d: search for the largest mappable graph")
    p.add_argument("--delegate-search-step", type=positive_int, help="compiler -k: step size for --search-delegate")
    p.add_argument("--timeout-sec", type=positive_int, help="compiler -t: compile timeout in seconds")
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
                        ("--delegate_search_step", args.delegate_search_step),
                        ("--timeout_sec", args.timeout_sec)):
        if value is not None:
            extra += [flag, str(value)]
    return extra + list(args.compiler_arg)


def run(args: argparse.Namespace) -> int:
    r = compile_model(args.model, args.out_dir, num_segments=args.num_segments, compiler=args.compiler,
                      extra_args=_passthrough(args))
    print(format_result(r))
    return 0
