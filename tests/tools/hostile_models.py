"""A deliberately Edge-TPU-hostile model, for the tests of the Edge TPU check (test code: not shipped in tools/).

Conv2DTranspose + BatchNorm + ReLU: TF 2.21 folds BN and ReLU into one TRANSPOSE_CONV
op of version 4, which edgetpu_compiler 16 rejects.
"""

from __future__ import annotations

from typing import Any


def build_transpose_conv_head(
    input_size: tuple[int, int] = (64, 64), num_joints: int = 16, batch_size: int | None = 1
) -> Any:
    """A small conv stem followed by the paper-style Conv2DTranspose+BN+ReLU head."""
    import keras
    from keras import layers

    h, w = input_size
    inputs = keras.Input(shape=(h, w, 3), batch_size=batch_size, name="image")
    x = layers.Conv2D(16, 3, strides=4, padding="same", activation="relu")(inputs)
    x = layers.Conv2DTranspose(16, 4, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    outputs = layers.Conv2D(num_joints, 1, name="heatmaps")(x)
    return keras.Model(inputs, outputs, name="transpose_conv_bn_relu")
