"""One command from a trained model to an Edge TPU build: import -> quantize -> check ->
compile -> evaluate, with a summary table at the end.

SOURCE is any model ``tools.importers`` reads (.keras, SavedModel, TF.js, ONNX, ...). The
chain: import it; quantize to full int8 with real images (the calibration set and its
image count are printed; a set below the minimum is refused with the number needed);
predict the Edge TPU mapping (``check``); compile with ``edgetpu_compiler`` when it is
found (``--compiler``, ``$EDGETPU_COMPILER``, PATH), else print the exact command to run
on a machine that has it; with ``--coco ANNOTATIONS --images DIR``, OKS AP of the float
model and the int8 model side by side.

Everything is checked (outputs against the decoder included) before anything is
written; the work happens in a hidden temporary folder next to ``--output`` and moves
into place only when every step succeeded, so a failed build leaves no file behind.
Takes every ``quantize`` option.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools import quantize as Q
from tools.errors import CompilerNotFoundError, DataError, ToolError

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    """What one build wrote and found (paths are the final ones)."""

    files: list[Path]
    calibration: str
    check_status: str
    check_text: str
    compiled: Path | None = None
    compile_text: str = ""
    compile_command: str = ""
    accuracy: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""
    usable: bool | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The final table: one row per step."""
        folders = sorted({str(f.parent) for f in self.files})
        names = ", ".join(f.name if len(folders) == 1 else str(f) for f in self.files)
        rows = [("files written", f"{len(self.files)} in {folders[0]}: {names}" if len(folders) == 1 else names),
                ("calibration", self.calibration),
                ("check", f"{self.check_status}: {self.check_text}"),
                ("compile", self.compile_text if self.compiled else f"not run: {self.compile_text}; run where "
                            f"edgetpu_compiler is: {self.compile_command}")]
        if self.accuracy:
            a = self.accuracy
            rows.append(("AP float / int8", f"{a['float']['AP']:.3f} / {a['int8']['AP']:.3f} (OKS AP on "
                                            f"{a['dataset']}; mean OKS {a['float']['mean_oks']:.3f} / "
                                            f"{a['int8']['mean_oks']:.3f})"))
        rows.append(("int8 report", self.verdict))
        rows += [("warning", w) for w in self.warnings]
        width = max(len(k) for k, _ in rows)
        return "\n".join(["build summary:"] + [f"  {k:<{width}}  {v}" for k, v in rows])


def _validate(args: argparse.Namespace, out: Path) -> None:
    """What can be refused before any work: the output folder, the evaluation inputs."""
    if not out.parent.is_dir():
        raise ToolError(f"--output {out}: directory {out.parent} does not exist; create it first")
    if out.is_dir():
        raise ToolError(f"--output {out} is a folder; give the .tflite file to write, e.g. {out / 'model_int8.tflite'}")
    if out.suffix != ".tflite":
        raise ToolError(f"--output {out}: name the int8 model file, ending in .tflite")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ToolError(f"--output {out}: folder {out.parent} is not writable; pass a folder you may write to")
    if args.compiler:  # asked for by name: a wrong path is refused now, not after quantizing
        from tools.compile import find_compiler

        find_compiler(args.compiler)
    if bool(args.coco) != bool(args.images):
        raise ToolError("--coco and --images go together: the annotation JSON and the folder of its images")
    if args.coco and not args.coco.is_file():
        raise DataError(f"--coco {args.coco}: annotation file not found; give a COCO keypoints JSON")
    if args.images and not args.images.is_dir():
        raise DataError(f"--images {args.images}: no such folder")


def _compile(model: Path, work: Path, final_dir: Path, compiler: str | None) -> tuple[Path | None, str, str]:
    """(compiled model in ``work`` or None, one line on what happened, the command for elsewhere)."""
    from tools.compile import compile_model, find_compiler

    command = f"edgetpu_compiler --out_dir {shlex.quote(str(final_dir))} {shlex.quote(str(final_dir / model.name))}"
    try:
        find_compiler(compiler)
    except CompilerNotFoundError as err:
        if compiler:  # asked for explicitly: a wrong path is an error, not a skip
            raise
        return None, str(err).split(";")[0], command
    try:
        r = compile_model(model, work, compiler=compiler)
    except ToolError as err:  # name the file the user will look for, not the temporary one
        why = str(err).split("; check the model with")[0].replace(str(work), str(final_dir))
        raise ToolError(f"{why}; nothing was written: `edgepose-tools quantize` with the same flags keeps the int8 "
                        "model, and `edgepose-tools check` on it shows what the compiler rejects") from None
    s = r.summary
    tpu, total = s.get("tpu_ops", r.mapped_ops), s.get("total_ops", r.mapped_ops + r.unmapped_ops)
    text = (f"{r.output_models[0].name}: {tpu} of {total} ops on the Edge TPU, on-chip parameters "
            f"{s.get('on_chip', '?')}, off-chip {s.get('off_chip', '?')}")
    return r.output_models[0], text, command


def _evaluate(float_model: Path, int8_model: Path, coco: Path, images: Path) -> dict[str, Any]:
    """OKS AP of the float and the int8 model (CPU) on COCO keypoints."""
    from edgepose.estimators.factory import open_estimator
    from tools.evaluate import evaluate_coco

    engines = []
    try:
        for m in (float_model, int8_model):
            engines.append(open_estimator(str(m), device="cpu"))
        res = evaluate_coco(engines, coco, images)
    finally:
        for e in engines:
            e.close()
    pick = ("AP", "AP50", "mean_oks", "detections")
    return {"dataset": coco.name, "float": {k: res["models"][0][k] for k in pick},
            "int8": {k: res["models"][1][k] for k in pick},
            "agreement": res.get("agreement_pck@0.05")}


def _move_into_place(work: Path, dest: Path) -> list[Path]:
    """Move every file of ``work`` into ``dest``; on a failure the ones already moved go too."""
    moved: list[Path] = []
    try:
        for f in sorted(work.iterdir()):
            target = dest / f.name
            os.replace(f, target)
            moved.append(target)
    except BaseException:
        for f in moved:
            f.unlink(missing_ok=True)
        raise
    return moved


def build(args: argparse.Namespace) -> BuildResult:
    """Run the whole chain for the parsed ``build`` arguments (see the module docstring)."""
    source: Path = args.model
    out: Path = args.output or source.with_name(f"{source.stem if source.is_file() else source.name}_int8.tflite")
    _validate(args, out)
    work = Path(tempfile.mkdtemp(prefix=f".{out.stem}.build-", dir=out.parent))
    try:
        print(f"[1/4] import {source} and quantize to full int8 ...", flush=True)
        q = Q.quantize_args(args, output=work / out.name)
        calibration = Q.describe_calibration(q, args.representative)
        print(f"      calibration: {calibration}", flush=True)
        from tools.check import STATUS_TEXT, check_model

        report = check_model(q.model_path)
        print(f"[2/4] check: {report.status}", flush=True)
        compiled, compile_text, command = _compile(q.model_path, work, out.parent, args.compiler)
        print(f"[3/4] compile: {compile_text if compiled else 'edgetpu_compiler not found'}", flush=True)
        accuracy: dict[str, Any] = {}
        if args.coco:
            print(f"[4/4] evaluate float vs int8 on {args.coco} ...", flush=True)
            accuracy = _evaluate(q.float_model_path, q.model_path, args.coco, args.images)
        moved = _move_into_place(work, out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    order = {p.name: i for i, p in enumerate(q.files)}
    files = sorted(moved, key=lambda p: (order.get(p.name, len(order)), p.name))
    v = q.report["verdict"]
    warnings = []
    stale = out.with_name(f"{out.stem}_edgetpu.tflite")
    if not compiled and stale.exists():
        warnings.append(f"{stale} is from an earlier build, not compiled from this {out.name}: recompile it "
                        "(the command above) or remove it, or the Edge TPU runs the old model")
    return BuildResult(files, calibration, report.status, STATUS_TEXT[report.status],
                       out.parent / compiled.name if compiled else None, compile_text, command, accuracy,
                       v["text"], v["usable"], warnings)


def register(subparsers: argparse._SubParsersAction) -> None:
    """``build`` takes every ``quantize`` flag (copied from its parser) plus its own."""
    holder = argparse.ArgumentParser(add_help=False).add_subparsers()
    Q.register(holder)
    p = subparsers.add_parser("build", parents=[holder.choices["quantize"]], conflict_handler="resolve",
                              help="import -> quantize -> check -> compile -> evaluate, one command",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for action in p._actions:  # the positional copied from quantize
        if action.dest == "model":
            action.metavar = "SOURCE"
            action.help = "the trained model: .keras, SavedModel folder, TF.js folder, .onnx, ..."
    p.add_argument("--output", type=Path,
                   help="the int8 .tflite to write; the rest goes next to it (default: SOURCE_int8.tflite)")
    p.add_argument("--compiler", help="edgetpu_compiler to use (default: $EDGETPU_COMPILER, then PATH; "
                                      "none found: the command to run is printed)")
    p.add_argument("--coco", type=Path, help="COCO keypoints JSON: evaluate float vs int8 (with --images)")
    p.add_argument("--images", type=Path, help="the folder of the --coco images")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(build(args).summary())
    return 0
