"""A stand-in for Coral's edgetpu_compiler (x86-64 only), for the compile wrapper tests.

Installed by a fixture as an executable ``edgetpu_compiler`` in a temp dir. It parses
the real compiler's options, copies the input model to ``<out_dir>/<stem>_edgetpu.tflite``
and prints a summary and writes ``<stem>_edgetpu.log`` in the real compiler's format.
``$FAKE_EDGETPU_MODE``: ``full`` (every op mapped; the table counts the input's real ops),
``partial`` (MoveNet-like: a CPU tail with three kinds of reasons), ``fail`` (exit 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

VERSION = "16.0.384591198"
PARTIAL = [  # (op, count, status)
    ("ADD", 19, "Mapped to Edge TPU"), ("ADD", 7, "More than one subgraph is not supported"),
    ("ARG_MAX", 2, "Operation is working on an unsupported data type"),
    ("CAST", 2, "Operation is working on an unsupported data type"),
    ("CONV_2D", 50, "Mapped to Edge TPU"), ("DEPTHWISE_CONV_2D", 24, "Mapped to Edge TPU"),
    ("QUANTIZE", 1, "Mapped to Edge TPU"),
    ("QUANTIZE", 1, "Operation is otherwise supported, but not mapped due to some unspecified limitation"),
    ("GATHER_ND", 4, "Operation not supported"),
]


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
    p.add_argument("model")
    a = p.parse_args()
    mode = os.environ.get("FAKE_EDGETPU_MODE", "full")
    print(f"Edge TPU Compiler version {VERSION}")
    if mode == "fail":
        print("ERROR: Didn't find op for builtin opcode 'TRANSPOSE_CONV' version '4'. An older version of this "
              "builtin might be supported.", file=sys.stderr)
        print("Compilation failed: Model failed in Tflite interpreter. Please ensure model can be loaded/run in "
              "Tflite interpreter.", file=sys.stderr)
        return 1
    src, out = Path(a.model), Path(a.out_dir)
    dst = out / f"{src.stem}_edgetpu.tflite"
    shutil.copyfile(src, dst)
    if mode == "partial":
        rows = PARTIAL
    else:
        import tflite

        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if isinstance(v, int)}
        m = tflite.Model.GetRootAsModel(src.read_bytes(), 0)
        sg = m.Subgraphs(0)
        counts = Counter()
        for i in range(sg.OperatorsLength()):
            code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
            counts[names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]] += 1
        rows = [(op, n, "Mapped to Edge TPU") for op, n in sorted(counts.items())]
    table = [f"{'Operator':<30} {'Count':<10} Status", ""] + [f"{op:<30} {n:<10} {st}" for op, n, st in rows]
    log = out / f"{src.stem}_edgetpu.log"
    log.write_text(f"Edge TPU Compiler version {VERSION}\nInput: {src}\nOutput: {dst}\n\n" + "\n".join(table) + "\n")
    tpu = sum(n for _, n, st in rows if st == "Mapped to Edge TPU")
    total = sum(n for _, n, _ in rows)
    print(f"Started a compilation timeout timer of {a.timeout_sec or 180} seconds.\n")
    print("Model compiled successfully in 412 ms.\n")
    print(f"Input model: {src}\nInput size: 2.76MiB\nOutput model: {dst}\nOutput size: 2.94MiB")
    print("On-chip memory used for caching model parameters: 2.72MiB")
    print("On-chip memory remaining for caching model parameters: 4.61MiB")
    print("Off-chip memory used for streaming uncached model parameters: 0.00B")
    print(f"Number of Edge TPU subgraphs: 1\nTotal number of operations: {total}\nOperation log: {log}\n")
    if tpu < total:
        print("Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of "
              "the model will instead run on the CPU, which is slower.")
        print(f"Number of operations that will run on Edge TPU: {tpu}\nNumber of operations that will run on CPU: "
              f"{total - tpu}\nSee the operation log file for individual operation details.")
    else:
        print("Number of operations that will run on Edge TPU: %d\nNumber of operations that will run on CPU: 0" % tpu)
    if a.show_operations:
        print("\n".join(table))
    print("Compilation child process completed within timeout period.\nCompilation succeeded! ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
