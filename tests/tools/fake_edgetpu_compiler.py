"""A stand-in for Coral's edgetpu_compiler (x86-64 only), for the compile wrapper tests.

Installed by a fixture as an executable ``edgetpu_compiler`` in a temp dir. It parses
the real compiler's options and takes one or more models (several are "co-compiled"),
copies each to ``<out_dir>/<stem>_edgetpu.tflite``, and prints the summary and writes
each ``<stem>_edgetpu.log`` in the real compiler's format (16.0; the co-compilation
layout as google-coral/edgetpu issues #458 and #518 show it: "Models compiled
successfully", one "Input model:" block per model, the shared remainder of the on-chip
cache repeated in every block). Each model takes on-chip cache for its file size, in
the order given, out of 7.33 MiB (MoveNet's 2.72 used + 4.61 remaining); the rest is
streamed off-chip.
``$FAKE_EDGETPU_MODE``: ``full`` (every op mapped; the table counts the input's real ops),
``partial`` (MoveNet-like: a CPU tail with three kinds of reasons), ``fail`` (exit 1),
``hang`` (starts a child process like the real compiler, writes part of the first
output, then both sleep and ignore SIGTERM; the child's pid goes to ``$FAKE_EDGETPU_PIDFILE``).
Compilers that exit 0 with a report but a bad output: ``empty`` (0-byte ``_edgetpu.tflite``),
``garbage`` (bytes that are not a TFLite model), ``no-custom-op`` (the CPU model copied
unchanged: a TFLite model without the ``edgetpu-custom-op``).

In ``full`` and ``partial`` mode each output is a real TFLite flatbuffer shaped like a
compiled model: the input's first input and output tensors, joined by one
``edgetpu-custom-op`` (its options are not a real Edge TPU executable).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

VERSION = "16.0.384591198"
CACHE = int(7.33 * 2**20)
PARTIAL = [  # (op, count, status)
    ("ADD", 19, "Mapped to Edge TPU"), ("ADD", 7, "More than one subgraph is not supported"),
    ("ARG_MAX", 2, "Operation is working on an unsupported data type"),
    ("CAST", 2, "Operation is working on an unsupported data type"),
    ("CONV_2D", 50, "Mapped to Edge TPU"), ("DEPTHWISE_CONV_2D", 24, "Mapped to Edge TPU"),
    ("QUANTIZE", 1, "Mapped to Edge TPU"),
    ("QUANTIZE", 1, "Operation is otherwise supported, but not mapped due to some unspecified limitation"),
    ("GATHER_ND", 4, "Operation not supported"),
]


def size(n: float) -> str:
    """Bytes the way the compiler prints them: 2.72MiB, 3.75KiB, 0.00B."""
    for unit, scale in (("MiB", 2**20), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.2f}B"


def op_rows(src: Path, mode: str) -> list[tuple[str, int, str]]:
    if mode == "partial":
        return PARTIAL
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if isinstance(v, int)}
    m = tflite.Model.GetRootAsModel(src.read_bytes(), 0)
    sg = m.Subgraphs(0)
    counts: Counter[str] = Counter()
    for i in range(sg.OperatorsLength()):
        code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
        counts[names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]] += 1
    return [(op, n, "Mapped to Edge TPU") for op, n in sorted(counts.items())]


def edgetpu_model(src: Path) -> bytes:
    """A TFLite flatbuffer: ``src``'s first input and output tensors (shape, type) and one
    ``edgetpu-custom-op`` operator between them (schema.fbs field slots)."""
    import flatbuffers
    import tflite

    m = tflite.Model.GetRootAsModel(src.read_bytes(), 0)
    sg = m.Subgraphs(0)
    ends = [sg.Tensors(sg.Inputs(0)), sg.Tensors(sg.Outputs(0))]
    b = flatbuffers.Builder(1024)

    def ints(values: list[int]) -> int:
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def table(fields: list[tuple[str, int, int]]) -> int:  # (kind, slot, value)
        b.StartObject(max(slot for _, slot, _ in fields) + 1)
        for kind, slot, value in fields:
            {"off": b.PrependUOffsetTRelativeSlot, "i32": b.PrependInt32Slot,
             "i8": b.PrependInt8Slot, "u32": b.PrependUint32Slot}[kind](slot, value, 0)
        return b.EndObject()

    def vector(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    tensors = []
    for i, t in enumerate(ends):
        name, shape = b.CreateString(f"t{i}"), ints([int(d) for d in t.ShapeAsNumpy()])
        tensors.append(table([("off", 0, shape), ("i8", 1, t.Type()), ("u32", 2, 0), ("off", 3, name)]))
    op = table([("u32", 0, 0), ("off", 1, ints([0])), ("off", 2, ints([1]))])
    graph = table([("off", 0, vector(tensors)), ("off", 1, ints([0])), ("off", 2, ints([1])),
                   ("off", 3, vector([op]))])
    custom = b.CreateString("edgetpu-custom-op")
    code = table([("i8", 0, 32), ("off", 1, custom), ("i32", 2, 1), ("i32", 3, 32)])
    b.StartObject(0)
    buffer = b.EndObject()
    model = table([("u32", 0, 3), ("off", 1, vector([code])), ("off", 2, vector([graph])),
                   ("off", 4, vector([buffer]))])
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def write_output(src: Path, dst: Path, mode: str) -> None:
    if mode == "empty":
        dst.write_bytes(b"")
    elif mode == "garbage":
        dst.write_bytes(b"<html>502 Bad Gateway</html>\n")
    elif mode == "no-custom-op":
        shutil.copyfile(src, dst)
    else:
        dst.write_bytes(edgetpu_model(src))


def hang(first_output: Path) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
    Path(os.environ["FAKE_EDGETPU_PIDFILE"]).write_text(str(child.pid))
    first_output.write_bytes(b"TFL3 partial")
    time.sleep(3600)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="edgetpu_compiler")
    p.add_argument("-o", "--out_dir", default=".")
    p.add_argument("-n", "--num_segments", type=int, default=1)
    p.add_argument("-s", "--show_operations", action="store_true")
    p.add_argument("-m", "--min_runtime_version", type=int)
    p.add_argument("-a", "--intermediate_tensors")
    p.add_argument("-d", "--search_delegate", action="store_true")
    p.add_argument("-k", "--delegate_search_step", type=int)
    p.add_argument("-t", "--timeout_sec", type=int)
    p.add_argument("models", nargs="+")
    a = p.parse_args()
    mode = os.environ.get("FAKE_EDGETPU_MODE", "full")
    print(f"Edge TPU Compiler version {VERSION}")
    if mode == "fail":
        print("ERROR: Didn't find op for builtin opcode 'TRANSPOSE_CONV' version '4'. An older version of this "
              "builtin might be supported.", file=sys.stderr)
        print("Compilation failed: Model failed in Tflite interpreter. Please ensure model can be loaded/run in "
              "Tflite interpreter.", file=sys.stderr)
        return 1
    out = Path(a.out_dir)
    srcs = [Path(m) for m in a.models]
    dsts = [out / f"{src.stem}_edgetpu.tflite" for src in srcs]
    print(f"Started a compilation timeout timer of {a.timeout_sec or 180} seconds.\n")
    if mode == "hang":
        return hang(dsts[0])
    sizes = [src.stat().st_size for src in srcs]
    on_chip, left = [], CACHE
    for n in sizes:
        on_chip.append(min(n, left))
        left -= on_chip[-1]
    plural = "Models" if len(srcs) > 1 else "Model"
    print(f"{plural} compiled successfully in 412 ms.\n")
    for src, dst, n, cached in zip(srcs, dsts, sizes, on_chip):
        write_output(src, dst, mode)
        rows = op_rows(src, mode)
        table = [f"{'Operator':<30} {'Count':<10} Status", ""] + [f"{op:<30} {k:<10} {st}" for op, k, st in rows]
        log = out / f"{src.stem}_edgetpu.log"
        log.write_text(f"Edge TPU Compiler version {VERSION}\nInput: {src}\nOutput: {dst}\n\n" + "\n".join(table) + "\n")
        tpu = sum(k for _, k, st in rows if st == "Mapped to Edge TPU")
        total = sum(k for _, k, _ in rows)
        print(f"Input model: {src}\nInput size: {size(n)}\nOutput model: {dst}\nOutput size: {size(n * 1.07)}")
        print(f"On-chip memory used for caching model parameters: {size(cached)}")
        print(f"On-chip memory remaining for caching model parameters: {size(left)}")
        print(f"Off-chip memory used for streaming uncached model parameters: {size(n - cached)}")
        print(f"Number of Edge TPU subgraphs: 1\nTotal number of operations: {total}\nOperation log: {log}")
        if tpu < total:
            print("\nModel successfully compiled but not all operations are supported by the Edge TPU. A percentage "
                  "of the model will instead run on the CPU, which is slower.")
            print(f"Number of operations that will run on Edge TPU: {tpu}\nNumber of operations that will run on "
                  f"CPU: {total - tpu}")
        print("See the operation log file for individual operation details.\n")
        if a.show_operations:
            print("\n".join(table) + "\n")
    print("Compilation child process completed within timeout period.\nCompilation succeeded! ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
