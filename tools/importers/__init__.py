"""Bring a trained model from any common format into one TensorFlow graph for the int8 path.

``load(path)`` picks the importer by what the path is (``detect_format``) and returns an
:class:`ImportedModel`: a TFLite converter factory over a batch-1, fixed-size, NHWC float
image input, the input semantics the model was trained with (mean/std, channel order,
original layout) and the names of the outputs. Each format is one module in this package
that registers a loader with :func:`register`; TensorFlow (and onnx, torch) are imported
only inside the loaders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.errors import ToolError
from tools.importers.base import FORMATS, ImportedModel, InputSpec

__all__ = ["FORMATS", "ImportedModel", "InputSpec", "check_importable", "detect_format", "load", "register"]

Loader = Callable[..., ImportedModel]
_LOADERS: dict[str, Loader] = {}


def register(fmt: str) -> Callable[[Loader], Loader]:
    """Decorator: ``@register("onnx")`` makes a loader the importer of one format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; add it to FORMATS")

    def deco(fn: Loader) -> Loader:
        _LOADERS[fmt] = fn
        return fn
    return deco


def detect_format(path: Path) -> str:
    """The format of ``path`` from its suffix or folder contents; a one-line error otherwise."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        if (path / "model.json").is_file():
            return "tfjs"
        raise ToolError(f"{path} is a folder without saved_model.pb or model.json; give a SavedModel, a TF.js "
                        "graph model folder, or a model file (.keras, .onnx, .pt/.pth, .tflite)")
    suffix = path.suffix.lower()
    by_suffix = {".keras": "keras", ".h5": "keras", ".onnx": "onnx", ".tflite": "tflite", ".pt": "torch",
                 ".pth": "torch", ".json": "tfjs"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise ToolError(f"{path}: unknown model type {suffix or '(no suffix)'!r}; give one of: a .keras file, a SavedModel "
                    "folder, a TF.js model.json (or its folder), an .onnx file, a PyTorch checkpoint (.pt/.pth, with "
                    "--factory), a float .tflite")


def _load_all() -> None:
    """Import every importer module so that its ``@register`` runs (modules found, not wired)."""
    import importlib
    import pkgutil

    import tools.importers as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base":
            importlib.import_module(f"tools.importers.{info.name}")


def check_importable(path: str | Path, fmt: str | None = None) -> str:
    """The format of ``path`` when this build can import it, without loading anything (cheap:
    the suffix or folder contents); a one-line error naming the path and the fix otherwise."""
    p = Path(path)
    if not p.exists():
        raise ToolError(f"model {p} not found; give a .keras file, a SavedModel or TF.js folder, an .onnx, a "
                        "PyTorch checkpoint or a float .tflite")
    fmt = fmt or detect_format(p)
    _load_all()
    if fmt not in _LOADERS:
        known = ", ".join(sorted(_LOADERS))
        raise ToolError(f"{p}: importing {fmt} models is not available in this build (it imports: {known}); "
                        "convert the model to one of those first")
    return fmt


def load(path: str | Path, *, fmt: str | None = None, **options: Any) -> ImportedModel:
    """Import ``path`` (format detected unless ``fmt`` is given); ``options`` go to the loader
    (``outputs=``, ``input_size=``, ``spec=`` and format-specific ones)."""
    p = Path(path)
    fmt = check_importable(p, fmt)
    return _LOADERS[fmt](p, **options)
