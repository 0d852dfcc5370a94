"""Predict what edgetpu_compiler 16 would do with a .tflite model, without the compiler.

Reads the flatbuffer with the ``tflite`` package, lists every op, flags what keeps an op
off the Edge TPU (op type, op version, float or int32 data, dynamic shapes, tensors with
more than 3 non-1 dimensions) and predicts the split the way the compiler partitions:
an op runs on the Edge TPU when it is supported and none of its inputs comes from an op
on the CPU; dtype conversions that only touch the graph's inputs or outputs (CAST,
QUANTIZE, DEQUANTIZE) stay on the CPU without splitting it, as in Coral's MoveNet build.

Statuses: ``mapped`` (everything maps), ``cpu-tail`` (the network maps; only a
post-processing tail without convolutions runs on the CPU, as Coral's MoveNet: passes),
``split`` (network compute would run on the CPU), ``compiled`` (already an
``_edgetpu.tflite``). Exit codes: 0 for mapped/cpu-tail/compiled (1 for cpu-tail with
``--strict``), 1 for split, 2 for a file that is not a TFLite model.
"""

from __future__ import annotations

import argparse
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgepose.core.errors import EdgePoseError, ModelError
from tools import edgetpu_ops as E

Placement = str  # "tpu" | "cpu" | "cpu-in" | "cpu-out"


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    signature: tuple[int, ...]
    constant: bool

    def describe(self) -> str:
        dims = ",".join(str(d) for d in (self.signature or self.shape))
        return f"{self.dtype.lower()}[{dims}]" + ("c" if self.constant else "")


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    version: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    placement: Placement
    reasons: tuple[tuple[str, str], ...]  # (kind, message) that keep this op off the TPU

    @property
    def label(self) -> str:
        return f"op {self.index} {self.name} v{self.version}"


@dataclass(frozen=True)
class Problem:
    # unsupported-op | op-version | float-tensor | float-model | cpu-tail | dtype | dynamic-shape | rank |
    # param-size | subgraphs | float-io
    kind: str
    severity: str  # "error" | "warning"
    message: str
    op_index: int | None = None
    op: str | None = None
    version: int | None = None


@dataclass
class CheckReport:
    """Result of :func:`check_model`; ``ok`` means the check passes (exit code 0)."""

    path: str
    status: str
    ops: list[OpInfo]
    problems: list[Problem]
    split_index: int | None
    param_bytes: int
    num_subgraphs: int = 1
    notes: list[str] = field(default_factory=list)
    total_param_bytes: int = 0  # all constant buffers (``param_bytes``: those of ops that map)

    @property
    def ok(self) -> bool:
        return self.status in ("mapped", "cpu-tail", "compiled")

    @property
    def fully_mapped(self) -> bool:
        return self.status == "mapped"

    def ops_on(self, *placements: Placement) -> list[OpInfo]:
        return [op for op in self.ops if op.placement in placements]

    def exit_code(self, strict: bool = False) -> int:
        if self.status == "cpu-tail" and strict:
            return 1
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["counts"] = {p: len(self.ops_on(p)) for p in ("tpu", "cpu-in", "cpu", "cpu-out")}
        return d


def _names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


_CORRUPT = (IndexError, ValueError, struct.error)  # what the flatbuffer reader raises on bad offsets


def _load(path: Path) -> Any:
    import tflite

    if path.is_dir():
        raise ModelError(f"{path} is a folder; give the path to a .tflite model file")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file; give the path to a .tflite model")
    buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TensorFlow Lite flatbuffer (no TFL3 identifier); give a .tflite file")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{path}: the model has no subgraph; re-export it")
        return model
    except _CORRUPT as err:  # flatbuffer offsets out of range
        raise ModelError(f"{path}: corrupt or truncated TensorFlow Lite file ({err}); re-export it") from None


def _tensor(model: Any, sg: Any, i: int, dtypes: dict[int, str]) -> TensorInfo:
    t = sg.Tensors(i)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    sig = tuple(int(d) for d in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() else ()
    buf = model.Buffers(t.Buffer()) if t.Buffer() > 0 else None
    const = buf is not None and (buf.DataLength() > 0 or buf.Size() > 0)
    return TensorInfo(i, (t.Name() or b"").decode(errors="replace"), dtypes.get(t.Type(), str(t.Type())),
                      shape, sig, const)


def _buffer_bytes(model: Any, sg: Any, i: int) -> tuple[int, int]:
    b = sg.Tensors(i).Buffer()
    buf = model.Buffers(b)
    return b, int(buf.DataLength() or buf.Size())


def _reasons(name: str, version: int, ins: tuple[TensorInfo, ...], outs: tuple[TensorInfo, ...],
             weights: frozenset[int] = frozenset()) -> list[tuple[str, str]]:
    """Why this op alone could not be mapped (empty when it could). ``weights``: tensors that
    are parameters though not constant (float16 weights dequantized at run time)."""
    found: list[tuple[str, str]] = []
    top = E.accepted_version(name)
    if top is None:
        found.append(("unsupported-op", f"{name} is not an Edge TPU operation"))
    elif version > top:
        src = E.EDGETPU_MAX_VERSION[name][1]
        fix = E.version_fix(name, version, tuple(t.dtype for t in ins), tuple(t.dtype for t in outs))
        if name == "CONV_2D" and version == 6 and len(ins) > 1 and ins[0].shape[-1:] == ins[1].shape[-1:]:
            fix = ("this op is a plain convolution, but all CONV_2D ops share one version and another one is "
                   f"grouped: {fix}")
        found.append(("op-version", f"version {version} is newer than v{top}, the highest edgetpu_compiler 16 "
                                    f"accepts (source: {src}); the cause: {fix}"))
    for t in ins + outs:
        if t.constant and t.dtype not in ("FLOAT32", "FLOAT16"):
            continue  # int8 weights, int32 bias and shape tensors are fine
        if t.dtype.startswith("FLOAT"):
            found.append(("float-tensor", f"tensor '{t.name}' is {t.describe()}; quantize the model to full "
                                          "int8 with `edgepose-tools build` (or `quantize`)"))
        elif t.dtype == "INT16":
            found.append(("dtype", f"tensor '{t.name}' is {t.describe()}; the Edge TPU computes in int8/uint8: "
                                   "quantize with int8 activations (converter supported_ops = [TFLITE_BUILTINS_INT8], "
                                   "not the 16x8 mode)"))
        elif t.dtype not in E.TPU_DTYPES:
            found.append(("dtype", f"tensor '{t.name}' is {t.describe()}; the Edge TPU computes in int8/uint8"))
    for t in ins + outs:
        if t.constant or t.index in weights:
            continue  # weights may have 4 dimensions; only activations count
        if any(d < 0 for d in t.signature):
            found.append(("dynamic-shape", f"tensor '{t.name}' has a dynamic shape {list(t.signature)}; "
                                           "export with a fixed batch size of 1 and a fixed input size"))
        if sum(1 for d in t.shape if d > 1) > 3:
            found.append(("rank", f"tensor '{t.name}' {list(t.shape)} has more than 3 dimensions larger than 1; "
                                  "the Edge TPU handles only the 3 innermost"))
    seen: set[tuple[str, str]] = set()
    return [r for r in found if not (r in seen or seen.add(r))]


def check_model(path: str | Path) -> CheckReport:
    """Parse ``path`` and predict the Edge TPU mapping; raises ModelError for a bad file."""
    path = Path(path)
    model = _load(path)
    try:  # the flatbuffer is read lazily: a truncated file fails only when an offset is followed
        return _check(path, model)
    except _CORRUPT as err:
        raise ModelError(f"{path}: corrupt or truncated TensorFlow Lite file ({err}); re-export it") from None


def _check(path: Path, model: Any) -> CheckReport:
    import tflite

    op_names, dtypes = _names(tflite.BuiltinOperator), _names(tflite.TensorType)
    sg = model.Subgraphs(0)
    graph_inputs = {int(i) for i in sg.InputsAsNumpy()} if sg.InputsLength() else set()
    graph_outputs = {int(i) for i in sg.OutputsAsNumpy()} if sg.OutputsLength() else set()
    consumers: dict[int, int] = {}
    for i in range(sg.OperatorsLength()):
        for t in sg.Operators(i).InputsAsNumpy() if sg.Operators(i).InputsLength() else ():
            consumers[int(t)] = consumers.get(int(t), 0) + 1

    ops: list[OpInfo] = []
    weights: set[int] = set()  # parameters computed from constants only (float16 weights -> DEQUANTIZE)
    all_params: dict[int, int] = {}  # every constant buffer: the model's real parameter size
    head_tensors = set(graph_inputs)  # produced by the graph input or by CPU input handling
    cpu_tensors: set[int] = set()     # produced by an op on the CPU after the split
    param_buffers: dict[int, int] = {}
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.DeprecatedBuiltinCode(), code.BuiltinCode()), "UNKNOWN")
        if name == "CUSTOM":
            name = (code.CustomCode() or b"custom").decode(errors="replace")
        in_idx = [int(t) for t in (op.InputsAsNumpy() if op.InputsLength() else ()) if t >= 0]
        out_idx = [int(t) for t in (op.OutputsAsNumpy() if op.OutputsLength() else ())]
        ins = tuple(_tensor(model, sg, t, dtypes) for t in in_idx)
        outs = tuple(_tensor(model, sg, t, dtypes) for t in out_idx)
        for t in ins:
            if t.constant:
                b, n = _buffer_bytes(model, sg, t.index)
                all_params[b] = n
        if ins and all(t.constant or t.index in weights for t in ins):
            weights.update(out_idx)
        # An already compiled model: the custom op is the Edge TPU's part of the graph.
        reasons = [] if name == E.EDGETPU_CUSTOM_OP else _reasons(name, code.Version(), ins, outs,
                                                                   frozenset(weights))
        live = [t.index for t in ins if not t.constant]
        conversion = name in E.EDGE_CONVERSION_OPS and all(k in ("unsupported-op", "float-tensor", "dtype")
                                                             for k, _ in reasons)
        if reasons and conversion and live and all(t in head_tensors for t in live):
            placement = "cpu-in"
            head_tensors.update(out_idx)
        elif (reasons and conversion and not any(t in cpu_tensors for t in live)
              and all(t in graph_outputs and t not in consumers for t in out_idx)):
            placement = "cpu-out"
        elif reasons or any(t in cpu_tensors for t in live):
            placement = "cpu"
            cpu_tensors.update(out_idx)
        else:
            placement = "tpu"
            for t in ins:
                if t.constant:
                    b, n = _buffer_bytes(model, sg, t.index)
                    param_buffers[b] = n
        ops.append(OpInfo(i, name, code.Version(), ins, outs, placement, tuple(reasons)))
    report = _summarise(path, model, ops, sum(param_buffers.values()))
    report.total_param_bytes = sum(all_params.values())
    return report


def _is_float_model(ops: list[OpInfo]) -> bool:
    """No op computes in int8/uint8: a float32 or float16 model, nothing quantized."""
    acts = [t for op in ops for t in op.inputs + op.outputs if not t.constant]
    return bool(acts) and not any(t.dtype in (*E.TPU_DTYPES, "INT16") for t in acts)


def _quantize_hint(path: Path) -> str:
    """The command that quantizes this float model (or the one it was exported from)."""
    from tools import importers

    try:
        importers.check_importable(path)
        return f"run `edgepose-tools build {path} --representative IMAGES` (see its --help)"
    except EdgePoseError:
        return ("quantize the model it was exported from: `edgepose-tools build SOURCE --representative IMAGES` "
                "(.keras, SavedModel, TF.js, ...)")


def _summarise(path: Path, model: Any, ops: list[OpInfo], param_bytes: int) -> CheckReport:
    blockers = [op for op in ops if op.placement == "cpu" and op.reasons]
    cpu = [op for op in ops if op.placement == "cpu"]
    split = blockers[0].index if blockers else None
    if any(op.name == E.EDGETPU_CUSTOM_OP for op in ops):
        status, split = "compiled", None  # the compiler already split it
    elif not cpu:
        status = "mapped"
    elif (any(op.placement == "tpu" for op in ops) and not any(op.name in E.HEAVY_OPS for op in cpu)
          and any(kind == "unsupported-op" for kind, _ in blockers[0].reasons)):
        status = "cpu-tail"
    else:
        status = "split"
    problems: list[Problem] = []
    float_model = _is_float_model(ops)
    if float_model and blockers:
        first = blockers[0]
        problems.append(Problem("float-model", "error", f"{path.name} is a float model (no int8 tensors): nothing "
                                "in it runs on the Edge TPU until it is quantized to full int8; "
                                f"{_quantize_hint(path)}",
                                first.index, first.name, first.version))
    elif status == "cpu-tail":
        first = blockers[0]
        tail = sorted({op.name for op in cpu})
        problems.append(Problem("cpu-tail", "warning", f"from {first.label} on, {len(cpu)} post-processing ops "
                                f"({', '.join(tail)}) run on the CPU by design: no convolutions among them, the "
                                "network itself maps (as in Coral's own MoveNet build); nothing to fix",
                                first.index, first.name, first.version))
    for op in blockers if status not in ("compiled", "cpu-tail") and not float_model else []:
        for kind, msg in op.reasons:
            problems.append(Problem(kind, "error", f"{op.label}: {msg}", op.index, op.name, op.version))
    for op in ops if status != "compiled" else []:
        if op.placement in ("cpu-in", "cpu-out") and any(k == "float-tensor" for k, _ in op.reasons):
            side = "input" if op.placement == "cpu-in" else "output"
            problems.append(Problem("float-io", "warning", f"{op.label}: float {side} converted on the CPU "
                                    "(cheap); use --io uint8 when quantizing to avoid it",
                                    op.index, op.name, op.version))
    if param_bytes > E.ON_CHIP_CACHE_BYTES:
        problems.append(Problem("param-size", "warning", f"parameters of mapped ops are {param_bytes / 2**20:.1f} MiB, "
                                f"more than the ~{E.ON_CHIP_CACHE_BYTES / 2**20:.0f} MiB on-chip cache: the rest "
                                "streams from host memory every inference (slower); use a smaller model"))
    if model.SubgraphsLength() > 1:
        problems.append(Problem("subgraphs", "warning", f"{model.SubgraphsLength()} subgraphs: only the first "
                                "maps to the Edge TPU (\"More than one subgraph is not supported\")"))
    notes = []
    if split is not None and status != "cpu-tail":  # a tail has its own line among the problems
        tail = sorted({op.name for op in cpu})
        notes.append(f"split at op {split} ({blockers[0].name} v{blockers[0].version}): {len(cpu)} ops from there "
                     f"on run on the CPU ({', '.join(tail)})")
    if status == "compiled":
        off = [op for op in ops if op.placement != "tpu"]
        on_cpu = sorted({op.name for op in off})
        notes.append(f"already compiled for the Edge TPU: {len(off)} ops outside "
                     f"{E.EDGETPU_CUSTOM_OP} run on the CPU ({', '.join(on_cpu) or 'none'}); "
                     "check the CPU model it was compiled from instead")
    return CheckReport(str(path), status, ops, problems, split, param_bytes, model.SubgraphsLength(), notes)


STATUS_TEXT = {
    "mapped": "maps fully to the Edge TPU",
    "cpu-tail": "maps with a CPU post-processing tail (the network runs on the Edge TPU)",
    "split": "would NOT map fully: network ops would run on the CPU",
    "compiled": "already compiled for the Edge TPU",
}


MAX_PROBLEMS = 12


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def verdict_line(report: CheckReport) -> str:
    return f"verdict: {report.status}: {STATUS_TEXT[report.status]}"


def format_report(report: CheckReport, verbose: bool = True) -> str:
    """A table of ops (placement, version, inputs) followed by problems and the verdict."""
    lines = []
    if verbose:
        lines.append(f"{'#':>4}  {'op':<24} {'ver':>3}  {'where':<7} inputs")
        for op in report.ops:
            ins = " ".join(t.describe() for t in op.inputs)
            mark = " !" if op.reasons and op.placement == "cpu" else ""
            lines.append(f"{op.index:>4}  {op.name:<24} {op.version:>3}  {op.placement:<7} {ins}{mark}")
        lines.append("")
    counts = report.to_dict()["counts"]
    lines.append(f"{report.path}: {len(report.ops)} ops: {counts['tpu']} on the Edge TPU, "
                 f"{counts['cpu-in'] + counts['cpu-out']} input/output conversions and {counts['cpu']} others on the "
                 "CPU; "
                 f"parameters {_size(report.total_param_bytes)} ({_size(report.param_bytes)} in ops on the Edge TPU)")
    shown = report.problems[:MAX_PROBLEMS]
    lines += [f"{p.severity}: {p.message}" for p in shown]
    if len(shown) < len(report.problems):
        lines.append(f"... and {len(report.problems) - len(shown)} more problems (see --json)")
    lines += report.notes
    lines.append(verdict_line(report))
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("check", help="predict how a .tflite model maps to the Edge TPU (no compiler needed)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the CPU .tflite model (full int8), or a registered model name")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 also for a CPU post-processing tail")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tools.argtypes import model_file

    report = check_model(model_file(args.model))
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    elif args.quiet:
        print(verdict_line(report))
    else:
        print(format_report(report))
    return report.exit_code(args.strict)
