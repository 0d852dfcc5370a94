"""Tiny Keras models and conversions for the tools tests (TensorFlow imported lazily).

Kept small (32-64 px inputs, a few conv layers) so building and converting takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgepose.core.preprocess import resize
from tests.conftest import load_rgb

IMAGES = ("coral_squat.bmp", "posenet_test_couple.jpg", "ultralytics_zidane.jpg", "tfexamples_image1.png",
          "ultralytics_bus.jpg", "skimage_astronaut.png")


def real_batches(image_dir: Path, size: int, count: int = 6) -> list[np.ndarray]:
    """Real images from ../shared/images as float [1, size, size, 3] batches of raw pixels."""
    out = []
    for name in IMAGES[:count]:
        resized, _ = resize(load_rgb(image_dir / name), (size, size), "letterbox")
        out.append(resized.astype(np.float32)[None])
    return out


def heatmap_model(size: int = 64, joints: int = 17, batch: int | None = 1, name: str = "tiny_heatmap") -> Any:
    """Raw pixels in, (size/4)^2 x joints heatmaps out; only Edge TPU friendly layers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3), batch_size=batch, name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(24, 3, strides=2, padding="same", activation="relu")(x)
    out = layers.Conv2D(joints, 1, name="heatmaps")(x)
    return keras.Model(inp, out, name=name)


def transpose_conv_model(size: int = 32) -> Any:
    """Conv2DTranspose + BatchNorm + ReLU head: TF fuses it into TRANSPOSE_CONV v4."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3), batch_size=1)
    x = layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(inp)
    x = layers.Conv2DTranspose(8, 4, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    return keras.Model(inp, layers.Conv2D(17, 1)(x))


def hard_swish_model(size: int = 32) -> Any:
    """Conv + hard swish (MobileNetV3's activation): TFLite fuses it into HARD_SWISH, which
    Coral's supported-operations table does not list."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3), batch_size=1)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = layers.Activation("hard_silu")(x)
    return keras.Model(inp, layers.Conv2D(17, 1)(x))


def erf_model(size: int = 32) -> Any:
    """A model with ERF, which TFLite has no builtin for: full-int8 conversion must fail."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 3), batch_size=1)
    x = layers.Conv2D(4, 3, padding="same")(inp)
    return keras.Model(inp, layers.Lambda(lambda t: keras.ops.erf(t))(x))


def to_tflite(model: Any, path: Path, batches: Iterable[np.ndarray] | None = None, io: str = "uint8") -> Path:
    """Convert with TF directly (independent of tools.quantize): float when ``batches`` is None."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if batches is not None:
        data = list(batches)
        rep: Callable[[], Iterable[list[np.ndarray]]] = lambda: ([x] for x in data)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io != "float32":
            conv.inference_input_type = conv.inference_output_type = getattr(tf, io)
    path.write_bytes(conv.convert())
    return path
