"""The inference engine: a TFLite interpreter on the Edge TPU (libedgetpu delegate) or
the CPU, with the model's preprocessing and decoder around it."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import numpy.typing as npt

from edgepose.decoders.base import OutputTensor
from edgepose.errors import DeviceError, ModelError
from edgepose.pose import Poses
from edgepose.preprocess import Transform, resize, to_input_tensor
from edgepose.manifest import manifest_from_dict
from edgepose.registry import ModelSpec, resolve_model
from edgepose.tflite_info import read_model_bytes, read_model_info

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


def edgetpu_library() -> str:
    return EDGETPU_LIBRARIES.get(platform.system(), "libedgetpu.so.1")


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
    from edgepose.errors import ConfigError

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


def _default_loader() -> DelegateLoader:
    return interpreter_module().load_delegate  # type: ignore[no-any-return]


def load_edgetpu_delegate(device: str | None = None, loader: DelegateLoader | None = None) -> Any:
    """Load libedgetpu as a TFLite delegate, or raise a one-line DeviceError.

    ``load_delegate`` raises OSError when the library is missing and ValueError when
    no Edge TPU is attached.
    """
    loader = loader or _default_loader()
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
        raise DeviceError(f"Edge TPU runtime {lib} could not be loaded ({detail}); {INSTALL_HINT}")
    which = f"device {device!r}" if device else "Edge TPU"
    raise DeviceError(f"{lib} loaded but found no {which}; {DEVICE_HINT}")


def _interpreter_class() -> Any:
    return interpreter_module().Interpreter


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Route what the C++ runtime prints on stderr (e.g. "Created TensorFlow Lite
    XNNPACK delegate") to the debug log, so CLI errors stay one line."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # stderr replaced (pytest capture, IDEs)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.debug("tflite: %s", line)


def _twin(spec: ModelSpec, want: str) -> str:
    m = spec.manifest
    return m.edgetpu_twin if want == "edgetpu" else m.cpu_twin


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
        from edgepose.decoders import get_decoder

        self.spec = spec
        self.device = device
        m = spec.manifest
        self._decode = get_decoder(m.decoder)
        self._params = {"schema": m.schema, **m.decoder_params, **(decoder_params or {})}
        data = read_model_bytes(spec.path)
        Interpreter = _interpreter_class()
        delegates = [delegate] if delegate is not None else None
        try:
            with _native_stderr_to_log():
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
        inp = self._interp.get_input_details()
        if len(inp) != 1 or len(inp[0]["shape"]) != 4 or inp[0]["shape"][3] != 3:
            shapes = [list(d["shape"]) for d in inp]
            raise ModelError(f"{spec.path.name}: inputs {shapes} are not one [1, H, W, 3] image")
        self._input = inp[0]
        self.input_size: tuple[int, int] = (int(inp[0]["shape"][1]), int(inp[0]["shape"][2]))
        if self.input_size != tuple(m.input_size):
            raise ModelError(
                f"{spec.path.name}: input is {list(self.input_size)} but manifest {m.name!r} says "
                f"{list(m.input_size)}; fix input_size in the manifest"
            )
        self._outputs = self._interp.get_output_details()
        self.timings: dict[str, float] = {}

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
        return np.dtype(self._input["dtype"])

    def preprocess(self, frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], Transform]:
        m = self.spec.manifest
        resized, transform = resize(frame, self.input_size, m.resize, m.interpolation)  # type: ignore[arg-type]
        q = self._input.get("quantization", (0.0, 0))
        tensor = to_input_tensor(resized, self.input_dtype, (float(q[0]), int(q[1])), m.mean, m.std)
        return tensor, transform

    def invoke(self, tensor: npt.NDArray[Any]) -> list[OutputTensor]:
        self._interp.set_tensor(self._input["index"], tensor)
        self._interp.invoke()
        outs = []
        for d in self._outputs:
            scale, zero = d.get("quantization", (0.0, 0))
            outs.append(OutputTensor(self._interp.get_tensor(d["index"]), float(scale), int(zero), d["name"]))
        return outs

    def decode(self, outputs: list[OutputTensor], transform: Transform, **params: Any) -> Poses:
        return self._decode(outputs, transform, **{**self._params, **params})

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


def open_engine(
    model: str | Path = "movenet-lightning",
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
    """Resolve ``model`` and load it on ``device``.

    ``auto`` uses the Edge TPU build (the model itself or its ``edgetpu_twin``) when an
    Edge TPU is present, else the CPU build with one warning line. ``cpu`` swaps an
    Edge TPU model for its ``cpu_twin``. ``edgetpu`` (or ``usb``, ``pci``, ``:N``)
    fails with a DeviceError when the runtime or the device is missing.
    ``resize``/``interpolation`` override the manifest's preprocessing.
    """
    kind, dev_opt = parse_device(device)
    spec = resolve_model(model, decoder=decoder, schema=schema)
    is_tpu = read_model_info(spec.path).edgetpu

    def load(s: ModelSpec, dev: str, delegate: Any = None) -> Engine:
        prep = {k: v for k, v in (("resize", resize), ("interpolation", interpolation)) if v}
        if prep:
            s = ModelSpec(manifest_from_dict({**s.manifest.to_dict(), **prep}, origin=s.manifest.name), s.path)
        return Engine(s, dev, delegate, num_threads, decoder_params)

    def other(want: str) -> ModelSpec | None:
        name = _twin(spec, want)
        return resolve_model(name) if name else None

    if kind == "cpu":
        if not is_tpu:
            return load(spec, "cpu")
        twin = other("cpu")
        if twin is None:
            raise ModelError(f"{spec.manifest.name} is compiled for the Edge TPU and lists no cpu_twin; "
                             "give the CPU .tflite with --model")
        log.info("using %s, the CPU twin of %s", twin.manifest.name, spec.manifest.name)
        return load(twin, "cpu")

    tpu_spec = spec if is_tpu else None
    if tpu_spec is None and _twin(spec, "edgetpu"):
        try:
            tpu_spec = other("edgetpu")
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
        return load(tpu_spec, "edgetpu", load_edgetpu_delegate(dev_opt, delegate_loader))

    # auto
    if tpu_spec is not None:
        try:
            return load(tpu_spec, "edgetpu", load_edgetpu_delegate(dev_opt, delegate_loader))
        except DeviceError as exc:
            cpu_spec = spec if not is_tpu else other("cpu")
            if cpu_spec is None:
                raise
            log.warning("no Edge TPU (%s); running %s on the CPU", str(exc).split(";")[0], cpu_spec.manifest.name)
            return load(cpu_spec, "cpu")
    return load(spec, "cpu")
