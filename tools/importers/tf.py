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
def load_saved_model(path: Path, **_: Any) -> ImportedModel:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is a directory without saved_model.pb; give a SavedModel or a .keras file")
    sig = tf.saved_model.load(str(path)).signatures["serving_default"]
    shape = list(sig.structured_input_signature[1].values())[0].shape
    size = _image_size(path, shape)
    names = tuple(sig.structured_outputs)
    return ImportedModel(path, "savedmodel", InputSpec(size), names,
                         lambda: tf.lite.TFLiteConverter.from_saved_model(str(path)))
