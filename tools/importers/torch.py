"""PyTorch importer: a module factory + a checkpoint (state_dict) -> ONNX -> the ONNX importer.

A .pt/.pth checkpoint holds weights, not the network, so the network comes from
``--factory module:callable`` (a function returning the ``torch.nn.Module`` the state_dict
was saved from; ``module`` is imported from the current directory or the Python path) and
the input size from ``--input-size HxW``. torch is an optional extra (``edgepose[torch]``):
PyPI's Linux torch wheels pull several GB of CUDA libraries.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgepose.core.errors import ModelError
from tools.errors import ToolError
from tools.importers import register
from tools.importers.base import ImportedModel, InputSpec

TORCH_EXTRA = "pip install 'edgepose[torch]'"
OPSET = 13


def _factory(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ToolError(f"--factory {spec!r}: expected MODULE:CALLABLE, e.g. mynet.models:pose_resnet50")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ToolError(f"--factory {spec}: cannot import it ({err}); run from the folder that holds {module} "
                        "or add it to PYTHONPATH") from None
    if not callable(fn):
        raise ToolError(f"--factory {spec}: {attr} is not callable; give the function that builds the network")
    return fn


def _state_dict(torch: Any, path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors, or a whole pickled module (not weights-only)
        raise ModelError(f"{path} is not a PyTorch state_dict checkpoint ({type(err).__name__}); save it with "
                         "torch.save(model.state_dict(), path)") from None
    for key in ("state_dict", "model", "model_state_dict"):  # common training-checkpoint wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a state_dict; save model.state_dict()")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel prefixes


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ToolError(f"importing a PyTorch checkpoint needs torch, an optional extra: {TORCH_EXTRA}") from None
    return torch


def export_onnx(path: Path, factory: str, size: tuple[int, int], folder: Path) -> Path:
    """The network built by ``factory`` with ``path``'s weights, exported to ONNX (NCHW)."""
    torch = _torch()
    net = _factory(factory)()
    if not isinstance(net, torch.nn.Module):
        raise ToolError(f"--factory {factory} returned a {type(net).__name__}, not a torch.nn.Module")
    missing, unexpected = net.load_state_dict(_state_dict(torch, path), strict=False)
    if missing or unexpected:
        raise ModelError(f"{path} does not fit --factory {factory}: {len(missing)} missing keys (e.g. "
                         f"{(missing or ['-'])[0]}), {len(unexpected)} unexpected (e.g. {(unexpected or ['-'])[0]})")
    net.eval()
    out = folder / f"{path.stem}.onnx"
    args = (torch.zeros(1, 3, *size),)
    kwargs: dict[str, Any] = {"input_names": ["image"], "opset_version": OPSET, "do_constant_folding": True}
    has_dynamo = "dynamo" in inspect.signature(torch.onnx.export).parameters
    with torch.no_grad():
        try:  # the TorchScript exporter first: plain ONNX ops, no onnxscript needed
            torch.onnx.export(net, args, str(out), **kwargs, **({"dynamo": False} if has_dynamo else {}))
        except Exception as err:
            if not has_dynamo:
                raise ModelError(f"torch.onnx.export of --factory {factory} failed: {str(err).splitlines()[0]}") \
                    from None
            try:  # torch versions without the TorchScript exporter: torch.export (needs onnxscript)
                torch.onnx.export(net, args, str(out), input_names=["image"], dynamo=True)
            except Exception as err2:
                raise ModelError(f"torch.onnx.export of --factory {factory} failed: "
                                 f"{str(err2).splitlines()[0] if str(err2) else type(err2).__name__}") from None
    return out


@register("torch")
def load_torch(path: Path, *, factory: str | None = None, input_size: tuple[int, int] | None = None,
               outputs: Any = None, **_: Any) -> ImportedModel:
    if not factory:
        raise ToolError(f"{path}: a PyTorch checkpoint holds weights, not the network; pass --factory "
                        "MODULE:CALLABLE (the function that builds it) and --input-size HxW")
    _torch()
    if input_size is None:
        raise ToolError(f"{path}: the input size of a PyTorch model is not in its checkpoint; pass --input-size HxW")
    from tools.importers.onnx import load_onnx

    folder = tempfile.TemporaryDirectory(prefix="edgepose-torch-")
    onnx_path = export_onnx(path, factory, input_size, Path(folder.name))
    imported = load_onnx(onnx_path, input_size=input_size, outputs=outputs)
    return ImportedModel(path, "torch", InputSpec(imported.input.size, layout="nchw"), imported.output_names,
                         imported.make_converter, keepalive=[imported, folder],
                         notes=[f"exported to ONNX (opset {OPSET}) with torch.onnx.export", *imported.notes])
