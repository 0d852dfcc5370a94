"""Simple Baselines (Xiao et al. 2018) on a MobileNetV2 backbone, Edge TPU friendly.

The paper's head is three Conv2DTranspose+BN+ReLU blocks; TF 2.21 fuses that into
TRANSPOSE_CONV v4, which edgetpu_compiler 16 rejects. Here each block is a 2x
resize (RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR) followed by Conv2D+BN+ReLU,
which the compiler maps. The model takes raw RGB pixels (0..255) and normalises
inside, so the int8 model's uint8 input is the camera image itself.
"""

from __future__ import annotations

from typing import Any


def build_simple_baselines(
    input_size: tuple[int, int] = (256, 256),
    num_joints: int = 16,
    alpha: float = 1.0,
    head_filters: int = 256,
    num_upsamples: int = 3,
    interpolation: str = "bilinear",
    batch_size: int | None = None,
    name: str = "simple_baselines",
    backbone_weights: str | None = None,
) -> Any:
    """MobileNetV2 (stride 32) + ``num_upsamples`` x2 upsampling blocks.

    ``backbone_weights``: None (random), ``"imagenet"`` (Keras' weights, downloaded into
    ~/.keras/models) or the path of a weights file of this MobileNetV2 without its top.
    Output: heatmaps (batch, h / 2**(5 - num_upsamples), w / ..., num_joints).
    ``batch_size=1`` gives the static-shape model for export; ``None`` a trainable one.
    """
    import keras
    from keras import layers

    from edgepose.core.errors import ConfigError

    if interpolation not in ("bilinear", "nearest"):
        raise ConfigError(f"head interpolation {interpolation!r}; expected bilinear or nearest")
    h, w = input_size
    if h % 32 or w % 32:
        raise ConfigError(f"simple_baselines input size {h}x{w} is not divisible by 32 (the backbone stride); "
                          "use e.g. 128, 192, 224 or 256")
    inputs = keras.Input(shape=(h, w, 3), batch_size=batch_size, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inputs)
    backbone = keras.applications.MobileNetV2(
        input_shape=(h, w, 3), alpha=alpha, include_top=False, weights=backbone_weights
    )
    x = backbone(x)
    for i in range(num_upsamples):
        size = (int(x.shape[1]) * 2, int(x.shape[2]) * 2)
        x = layers.Resizing(*size, interpolation=interpolation, name=f"up{i}")(x)
        x = layers.Conv2D(head_filters, 3, padding="same", use_bias=False, name=f"up{i}_conv")(x)
        x = layers.BatchNormalization(name=f"up{i}_bn")(x)
        x = layers.ReLU(name=f"up{i}_relu")(x)
    outputs = layers.Conv2D(num_joints, 1, padding="same", name="heatmaps")(x)
    return keras.Model(inputs, outputs, name=name)
