"""The inference engine: a TFLite interpreter on the Edge TPU (libedgetpu delegate) or
the CPU, with the model's preprocessing and decoder around it."""

from __future__ import annotations

import gc
import logging
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import DeviceError, ModelError
from edgepose.core.nativelog import native_stderr_to_log
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform, resize, to_input_tensor
from edgepose.decoders.base import OutputTensor
from edgepose.models.manifest import manifest_from_dict
from edgepose.models.registry import ModelSpec, resolve_model
from edgepose.models.tflite_info import read_model_bytes, read_model_info
from edgepose.models.twins import resolve_twin, twin_name

log = logging.getLogger(__name__)

EDGETPU_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}

DelegateLoader = Callable[..., Any]

INSTALL_HINT = (
    "install the Edge TPU runtime pair for this OS with deploy/install-pi.sh: libedgetpu1-std "
    "built against the interpreter's TensorFlow (deploy/runtimes.toml; Coral's apt build crashes "
    "with current interpreters)"
)
DEVICE_HINT = (
    "plug the Coral USB Accelerator into a USB 3 (blue) port, check `lsusb` shows 1a6e:089a "
    "or 18d1:9302, and that the udev rule gives your user access (group plugdev); then replug it"
)


class RuntimeMissing(DeviceError):
    """libedgetpu itself cannot be loaded: trying again will not find an Edge TPU
    (unlike "no device", which a replug fixes)."""


def edgetpu_library() -> str:
    return EDGETPU_LIBRARIES.get(platform.system(), "libedgetpu.so.1")


_WARNED: set[str] = set()


def warn_once(logger: logging.Logger, msg: str, reason: str, *args: Any) -> None:
    """A warning the first time ``reason`` comes up in this process, then only at INFO: a
    two-model pipeline without its Edge TPU says so in one line, not one per model."""
    level = logging.INFO if reason in _WARNED else logging.WARNING
    _WARNED.add(reason)
    logger.log(level, msg, reason, *args)


def parse_device(device: str) -> tuple[str, str | None]:
    """``auto``/``cpu``/``edgetpu`` or an Edge TPU device spec (``usb``, ``pci``, ``:0``, ``usb:1``).

    Returns (kind, delegate device option or None).
    """
    d = device.strip().lower()
    if d in ("auto", "cpu"):
        return d, None
    if d == "edgetpu":
        return "edgetpu", None
    kind, _, num = d.partition(":")
    if kind in ("usb", "pci", "") and (num.isdigit() if ":" in d else kind != ""):
        return "edgetpu", d
    from edgepose.core.errors import ConfigError

    raise ConfigError(f"unknown device {device!r}; expected auto, cpu, edgetpu, usb, pci, :N, usb:N or pci:N")


# Preferred first: tflite_runtime where it is installed (the pairing known to work with
# libedgetpu builds, as Frigate ships it), else ai-edge-litert.
INTERPRETER_MODULES = ("tflite_runtime.interpreter", "ai_edge_litert.interpreter")


def interpreter_module() -> Any:
    """The TFLite interpreter module in use (``tflite_runtime`` preferred)."""
    import importlib

    for name in INTERPRETER_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise DeviceError("no TFLite interpreter installed; `pip install ai-edge-litert` (or `pip install edgepose`)")


def load_edgetpu_delegate(device: str | None = None, loader: DelegateLoader | None = None) -> Any:
    """Load libedgetpu as a TFLite delegate, or raise a one-line DeviceError.

    ``load_delegate`` raises OSError when the library is missing and ValueError when
    no Edge TPU is attached.
    """
    loader = loader or interpreter_module().load_delegate
    lib = edgetpu_library()
    options = {"device": device} if device else {}
    failure: tuple[type[BaseException], str] | None = None
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None  # a failed Delegate complains in __del__
    try:
        try:
            return loader(lib, options)
        except (OSError, ValueError) as exc:
            failure = (type(exc), str(exc))
        gc.collect()  # drop the half-built Delegate while its complaint is silenced
    finally:
        sys.unraisablehook = old_hook
    assert failure is not None
    kind, text = failure
    if issubclass(kind, OSError):
        detail = text.split(";")[0]
        raise RuntimeMissing(f"Edge TPU runtime {lib} could not be loaded ({detail}); {INSTALL_HINT}")
    which = f"device {device!r}" if device else "Edge TPU"
    raise DeviceError(f"{lib} loaded but found no {which}; {DEVICE_HINT}")




class ModelIO:
    """A loaded model's tensors, as its interpreter reports them, with the manifest's
    preprocessing and decoder around them: everything but the invoke.

    It lives where frames are prepared and poses decoded: beside the interpreter in
    this process (``Engine``), or in the parent of a worker process that runs the
    interpreter (``edgepose.inference.worker``), built from the details the worker sends back.
    """

    def __init__(self, spec: ModelSpec, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
                 decoder_params: dict[str, Any] | None = None) -> None:
        from edgepose.decoders import get_decoder

        m = spec.manifest
        self.spec = spec
        self._decode = get_decoder(m.decoder)
        self._params = {"schema": m.schema, **m.decoder_params, **(decoder_params or {})}
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][3] != 3:
            shapes = [list(d["shape"]) for d in inputs]
            raise ModelError(f"{spec.path.name}: inputs {shapes} are not one [1, H, W, 3] image")
        self.input: dict[str, Any] = inputs[0]
        self.outputs: list[dict[str, Any]] = outputs
        self.input_size: tuple[int, int] = (int(inputs[0]["shape"][1]), int(inputs[0]["shape"][2]))
        if self.input_size != tuple(m.input_size):
            raise ModelError(
                f"{spec.path.name}: input is {list(self.input_size)} but manifest {m.name!r} says "
                f"{list(m.input_size)}; fix input_size in the manifest"
            )

    @property
    def schema(self) -> str:
        return self.spec.manifest.schema

    @property
    def name(self) -> str:
        return self.spec.manifest.name

    @property
    def multi_pose(self) -> bool:
        return self.spec.manifest.multi_pose

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input["dtype"])

    @property
    def input_quantization(self) -> tuple[float, int]:
        q = self.input.get("quantization", (0.0, 0))
        return float(q[0]), int(q[1])

    def preprocess(self, frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], Transform]:
        m = self.spec.manifest
        resized, transform = resize(frame, self.input_size, m.resize, m.interpolation)  # type: ignore[arg-type]
        tensor = to_input_tensor(resized, self.input_dtype, self.input_quantization, m.mean, m.std, m.channels)
        return tensor, transform

    def wrap(self, arrays: list[npt.NDArray[Any]]) -> list[OutputTensor]:
        """The output arrays (in ``outputs`` order) with their quantization and names."""
        outs = []
        for d, data in zip(self.outputs, arrays):
            scale, zero = d.get("quantization", (0.0, 0))
            outs.append(OutputTensor(data, float(scale), int(zero), d["name"]))
        return outs

    def decode(self, outputs: list[OutputTensor], transform: Transform, **params: Any) -> Poses:
        return self._decode(outputs, transform, **{**self._params, **params})


class Engine:
    """A loaded model: ``infer(frame) -> Poses`` with per-stage times in ``timings`` (ms)."""

    def __init__(
        self,
        spec: ModelSpec,
        device: str = "cpu",
        delegate: Any = None,
        num_threads: int | None = None,
        decoder_params: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.device = device
        m = spec.manifest
        data = read_model_bytes(spec.path)
        Interpreter = interpreter_module().Interpreter
        delegates = [delegate] if delegate is not None else None
        try:
            with native_stderr_to_log():
                self._interp = Interpreter(model_content=data, experimental_delegates=delegates,
                                           num_threads=num_threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if read_model_info(spec.path).edgetpu and delegate is None:
                raise ModelError(
                    f"{spec.path.name} is compiled for the Edge TPU and cannot run on the CPU; "
                    f"use --device auto/edgetpu or its CPU twin {m.cpu_twin or '(none listed)'}"
                ) from None
            raise ModelError(f"{spec.path} could not be loaded by the TFLite interpreter: {first}") from None
        self.io = ModelIO(spec, self._interp.get_input_details(), self._interp.get_output_details(),
                          decoder_params)
        self.input_size = self.io.input_size
        self.timings: dict[str, float] = {}

    @property
    def schema(self) -> str:
        return self.io.schema

    @property
    def name(self) -> str:
        return self.io.name

    @property
    def multi_pose(self) -> bool:
        return self.io.multi_pose

    @property
    def input_dtype(self) -> np.dtype:
        return self.io.input_dtype

    def preprocess(self, frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], Transform]:
        return self.io.preprocess(frame)

    def invoke(self, tensor: npt.NDArray[Any]) -> list[OutputTensor]:
        self._interp.set_tensor(self.io.input["index"], tensor)
        self._interp.invoke()
        return self.io.wrap([self._interp.get_tensor(d["index"]) for d in self.io.outputs])

    def decode(self, outputs: list[OutputTensor], transform: Transform, **params: Any) -> Poses:
        return self.io.decode(outputs, transform, **params)

    def infer(self, frame: npt.NDArray[np.uint8]) -> Poses:
        t0 = time.perf_counter()
        tensor, transform = self.preprocess(frame)
        t1 = time.perf_counter()
        outputs = self.invoke(tensor)
        t2 = time.perf_counter()
        poses = self.decode(outputs, transform)
        t3 = time.perf_counter()
        self.timings = {"preprocess_ms": (t1 - t0) * 1e3, "invoke_ms": (t2 - t1) * 1e3,
                        "decode_ms": (t3 - t2) * 1e3}
        return poses

    def close(self) -> None:
        self._interp = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ModelPlan:
    """Which build of a model runs where, decided from its manifest and the device asked
    for, before anything is loaded: ``edgetpu`` (the Edge TPU build, or None) and
    ``cpu_spec()`` (the CPU build, or the fallback when the Edge TPU fails; None for
    ``edgetpu``, which has none). A ``cpu_twin`` is resolved on first use, so that
    ``auto`` with a working Edge TPU never fetches it. ``delegate_device`` is the
    delegate's device option (``usb``, ``pci:1``...)."""

    def __init__(self, spec: ModelSpec, delegate_device: str | None, prep: dict[str, str],
                 edgetpu: ModelSpec | None, cpu: ModelSpec | None, cpu_twin: str = "") -> None:
        self.requested, self.delegate_device = spec, delegate_device
        self._prep = prep
        self.edgetpu = self._prepared(edgetpu)
        self._cpu = self._prepared(cpu)
        self._cpu_twin = cpu_twin

    def _prepared(self, s: ModelSpec | None) -> ModelSpec | None:
        if s is None or not self._prep:
            return s
        return ModelSpec(manifest_from_dict({**s.manifest.to_dict(), **self._prep},
                                            origin=s.manifest.name), s.path)

    def cpu_spec(self) -> ModelSpec | None:
        """The CPU build (the model itself, or its ``cpu_twin``), None when it lists none."""
        if self._cpu is None and self._cpu_twin:
            self._cpu = self._prepared(resolve_twin(self.requested, self._cpu_twin))
        return self._cpu


def plan_model(model: str | Path, device: str = "auto", *,
               decoder: str | None = None, schema: str | None = None,
               resize: str | None = None, interpolation: str | None = None) -> ModelPlan:
    """Resolve ``model`` and decide which of its builds runs on which device (see
    ``open_engine``); ModelError/ConfigError when ``device`` cannot be served at all."""
    kind, dev_opt = parse_device(device)
    spec = resolve_model(model, decoder=decoder, schema=schema)
    # compiled for the Edge TPU, or a build its manifest says is one (the pair `compile` wrote)
    is_tpu = read_model_info(spec.path).edgetpu or spec.manifest.device == "edgetpu"
    prep = {k: v for k, v in (("resize", resize), ("interpolation", interpolation)) if v}

    def plan(edgetpu: ModelSpec | None, cpu: ModelSpec | None, cpu_twin: str = "") -> ModelPlan:
        return ModelPlan(spec, dev_opt, prep, edgetpu, cpu, cpu_twin)

    if kind == "cpu":
        if not is_tpu:
            return plan(None, spec)
        name = twin_name(spec, "cpu")
        if not name:
            raise ModelError(f"{spec.manifest.name} is compiled for the Edge TPU and lists no cpu_twin; "
                             "give the CPU .tflite with --model")
        twin = resolve_twin(spec, name)
        log.info("using %s, the CPU twin of %s", twin.manifest.name, spec.manifest.name)
        return plan(None, twin)

    tpu_spec = spec if is_tpu else None
    if tpu_spec is None and twin_name(spec, "edgetpu"):
        try:
            tpu_spec = resolve_twin(spec, twin_name(spec, "edgetpu"))
        except ModelError as exc:
            if kind == "edgetpu":
                raise
            log.warning("Edge TPU twin of %s unavailable (%s); using the CPU", spec.manifest.name, exc)
    if kind == "edgetpu":
        if tpu_spec is None:
            raise ModelError(
                f"{spec.manifest.name} is not compiled for the Edge TPU and has no edgetpu_twin; "
                "compile it with `edgepose-tools compile` or use --device cpu"
            )
        return plan(tpu_spec, None)
    return plan(tpu_spec, None, twin_name(spec, "cpu")) if is_tpu else plan(tpu_spec, spec)


def open_engine(
    model: str | Path,
    device: str = "auto",
    *,
    num_threads: int | None = None,
    decoder: str | None = None,
    schema: str | None = None,
    decoder_params: dict[str, Any] | None = None,
    resize: str | None = None,
    interpolation: str | None = None,
    delegate_loader: DelegateLoader | None = None,
) -> Engine:
    """Resolve ``model`` and load it on ``device``, in this process.

    ``auto`` uses the Edge TPU build (the model itself or its ``edgetpu_twin``) when an
    Edge TPU is present, else the CPU build with one warning line. ``cpu`` swaps an
    Edge TPU model for its ``cpu_twin``. ``edgetpu`` (or ``usb``, ``pci``, ``:N``)
    fails with a DeviceError when the runtime or the device is missing.
    ``resize``/``interpolation`` override the manifest's preprocessing.
    (``edgepose.inference.worker.Supervisor.open_engine`` does the same in a worker process.)
    """
    plan = plan_model(model, device, decoder=decoder, schema=schema, resize=resize,
                      interpolation=interpolation)

    def load(s: ModelSpec, dev: str, delegate: Any = None) -> Engine:
        return Engine(s, dev, delegate, num_threads, decoder_params)

    if plan.edgetpu is None:
        cpu = plan.cpu_spec()
        assert cpu is not None
        return load(cpu, "cpu")
    try:
        return load(plan.edgetpu, "edgetpu", load_edgetpu_delegate(plan.delegate_device, delegate_loader))
    except DeviceError as exc:
        cpu = plan.cpu_spec()  # auto's fallback (None for edgetpu)
        if cpu is None:
            raise
        warn_once(log, "no Edge TPU (%s); running %s on the CPU", str(exc).split(";")[0], cpu.manifest.name)
        return load(cpu, "cpu")
