"""Find a model's other build: the Edge TPU twin of a CPU model and the CPU twin of an
Edge TPU model.

A twin is named in the manifest (``edgetpu_twin`` / ``cpu_twin``) or, when it is not,
follows the layout ``edgepose-tools compile`` writes: ``<stem>_edgetpu.tflite`` beside
``<stem>.tflite``, each with its ``.toml`` manifest. A named twin is looked for

1. beside the model (``<twin>.tflite`` with its sidecar manifest: a user's pair),
2. among the registered models (``edgepose models list``),
3. in the folders of ``$EDGEPOSE_MODEL_PATH`` (``<twin>.tflite`` with its sidecar).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgepose.core.errors import ModelError
from edgepose.models.registry import ModelSpec, describe_model, resolve_model

__all__ = ["EDGETPU_SUFFIX", "twin_name", "resolve_twin"]

EDGETPU_SUFFIX = "_edgetpu"


def _sibling_by_layout(spec: ModelSpec, want: str) -> Path | None:
    """The twin ``compile`` would have written beside ``spec.path``, with its manifest."""
    stem = spec.path.stem
    if want == "edgetpu":
        name = stem + EDGETPU_SUFFIX
    elif stem.endswith(EDGETPU_SUFFIX):
        name = stem[: -len(EDGETPU_SUFFIX)]
    else:
        return None
    cand = spec.path.with_name(name + ".tflite")
    return cand if cand.is_file() and cand.with_suffix(".toml").is_file() else None


def twin_name(spec: ModelSpec, want: str) -> str:
    """The twin ``spec`` has for ``want`` ("cpu" or "edgetpu"): the manifest's name, else
    the path of a twin laid out beside it by ``compile``, else ""."""
    m = spec.manifest
    named = m.edgetpu_twin if want == "edgetpu" else m.cpu_twin
    if named:
        return named
    hit = _sibling_by_layout(spec, want)
    return str(hit) if hit is not None else ""


def _with_sidecar(path: Path) -> bool:
    return path.is_file() and path.with_suffix(".toml").is_file()


def _on_model_path(name: str) -> Path | None:
    """``<name>.tflite`` with its sidecar in a folder of $EDGEPOSE_MODEL_PATH."""
    file_name = name + ".tflite"
    for root in os.environ.get("EDGEPOSE_MODEL_PATH", "").split(os.pathsep):
        folder = Path(root) if root else None
        if folder is None or not folder.is_dir():
            continue
        for hit in [folder / file_name, *sorted(folder.rglob(file_name))]:
            if _with_sidecar(hit):
                return hit
    return None


def resolve_twin(spec: ModelSpec, name: str) -> ModelSpec:
    """The model ``name`` (a twin of ``spec``): beside it, registered, or on the model path.

    A ``name`` that is a path (from ``twin_name``) is resolved as one. ModelError names
    every place looked in when the twin is nowhere.
    """
    if os.sep in name or "/" in name:
        return resolve_model(name)
    beside = spec.path.with_name(name + ".tflite")
    if _with_sidecar(beside):
        return resolve_model(beside)
    try:
        describe_model(name)
    except ModelError:
        pass
    else:
        return resolve_model(name)
    found = _on_model_path(name)
    if found is not None:
        return resolve_model(found)
    raise ModelError(
        f"twin {name!r} of {spec.manifest.name} not found: no {name}.tflite with its {name}.toml "
        f"beside {spec.path} or in $EDGEPOSE_MODEL_PATH, and no registered model of that name "
        "(`edgepose models add`, or copy the pair into one folder)")
