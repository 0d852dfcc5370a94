"""Keras (.keras/.h5) and SavedModel importers: the graph is TensorFlow's already."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from edgepose.core.errors import ModelError
from tools.importers import register
from tools.importers.base import ImportedModel, InputSpec


def _image_size(path: Path, shape: Any) -> tuple[int, int]:
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ModelError(f"{path}: input shape {list(shape)} is not a fixed-size image [1, H, W, 3]")
    return int(shape[1]), int(shape[2])


@register("keras")
def load_keras(path: Path, **_: Any) -> ImportedModel:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a Keras model archive (a .keras file is a zip); re-save it with model.save()")
    try:
        km = keras.models.load_model(str(path), compile=False)
    except (ValueError, OSError, TypeError) as err:
        raise ModelError(f"{path} cannot be loaded by Keras ({str(err).splitlines()[0]})") from None
    size = _image_size(path, km.input_shape)
    names = tuple(getattr(t, "name", f"output_{i}") for i, t in enumerate(km.outputs))
    return ImportedModel(path, "keras", InputSpec(size), names,
                         lambda: tf.lite.TFLiteConverter.from_keras_model(km), keepalive=[km])


@register("savedmodel")
def load_saved_model(path: Path, *, outputs: list[str] | tuple[str, ...] | None = None,
                     input_size: tuple[int, int] | None = None, clip: dict[str, tuple[float, float]] | None = None,
                     **_: Any) -> ImportedModel:
    """A SavedModel's ``serving_default``; with ``outputs=`` (graph node names, e.g.
    ``StatefulPartitionedCall/model/head/BiasAdd``) it is frozen and cut there."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is a directory without saved_model.pb; give a SavedModel or a .keras file")
    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures["serving_default"]
    shape = list(sig.structured_input_signature[1].values())[0].shape
    if not outputs and not clip and input_size is None:
        size = _image_size(path, shape)
        names = tuple(sig.structured_outputs)
        return ImportedModel(path, "savedmodel", InputSpec(size), names,
                             lambda: tf.lite.TFLiteConverter.from_saved_model(str(path)))
    return _cut_saved_model(path, loaded, sig, shape, list(outputs or []), input_size, clip)


def _cut_saved_model(path: Path, loaded: Any, sig: Any, shape: Any, outputs: list[str],
                     input_size: tuple[int, int] | None, clip: dict[str, tuple[float, float]] | None) -> ImportedModel:
    """Freeze the signature to a GraphDef and hand it to the graph path the TF.js importer uses."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from tools.importers.tfjs import fix_input, graph_model

    frozen = convert_variables_to_constants_v2(sig)
    gd = frozen.graph.as_graph_def()
    in_name = frozen.inputs[0].name.split(":")[0]
    names = {n.name for n in gd.node}
    wanted = [o.split(":")[0] for o in outputs] or [t.name.split(":")[0] for t in frozen.outputs]
    missing = [o for o in wanted if o not in names]
    if missing:
        close = sorted(n for n in names if missing[0].rsplit("/", 1)[-1] in n)[:3]
        raise ModelError(f"{path}: no tensor named {missing[0]!r} in the frozen graph"
                         + (f" (similar: {', '.join(close)})" if close else "")
                         + "; give graph node names to --outputs")
    dims = list(shape)
    size = input_size
    if size is None and len(dims) == 4 and dims[1] and dims[2]:
        size = (int(dims[1]), int(dims[2]))
    if size is None:
        raise ModelError(f"{path}: input shape {dims} has no fixed size; pass --input-size HxW")
    fix_input(gd, tf, in_name, (int(size[0]), int(size[1])))
    return graph_model(gd, in_name, wanted, clip, path, "savedmodel", InputSpec((int(size[0]), int(size[1]))),
                       [f"froze serving_default ({len(gd.node)} nodes)"], cut=bool(outputs))
