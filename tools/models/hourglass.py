"""The Stacked Hourglass network (Newell et al. 2016) as in the MPII tutorial.

Pre-activation bottleneck residuals, recursive hourglass modules with max-pool down and
nearest-neighbour resize up (RESIZE_NEAREST_NEIGHBOR; Keras UpSampling2D "nearest"
lowers to TILE, which the Edge TPU lacks), one
heatmap output per stack for intermediate supervision; the last output is the
prediction. Input is raw RGB pixels (0..255), normalised inside the model.
"""

from __future__ import annotations

from typing import Any


def _bottleneck(x: Any, filters: int, prefix: str, strides: int = 1) -> Any:
    """BN-ReLU-Conv1x1 / BN-ReLU-Conv3x3 / BN-ReLU-Conv1x1 with a projected skip when needed."""
    from keras import layers

    identity = x
    if strides != 1 or x.shape[-1] != filters:
        identity = layers.Conv2D(filters, 1, strides=strides, padding="same", name=f"{prefix}_skip")(x)
    y = x
    for i, (f, k, s) in enumerate(((filters // 2, 1, 1), (filters // 2, 3, strides), (filters, 1, 1))):
        y = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn{i}")(y)
        y = layers.ReLU(name=f"{prefix}_relu{i}")(y)
        y = layers.Conv2D(f, k, strides=s, padding="same", name=f"{prefix}_conv{i}")(y)
    return layers.Add(name=f"{prefix}_add")([identity, y])


def _hourglass(x: Any, order: int, filters: int, num_residual: int, prefix: str) -> Any:
    """One recursive hourglass of ``order`` 2x down/up levels."""
    from keras import layers

    up1 = x
    for r in range(num_residual):
        up1 = _bottleneck(up1, filters, f"{prefix}_up1_{r}")
    low = layers.MaxPool2D(2, 2, name=f"{prefix}_pool")(x)
    for r in range(num_residual):
        low = _bottleneck(low, filters, f"{prefix}_low1_{r}")
    if order > 1:
        low = _hourglass(low, order - 1, filters, num_residual, f"{prefix}_o{order - 1}")
    else:
        for r in range(num_residual):
            low = _bottleneck(low, filters, f"{prefix}_low2_{r}")
    for r in range(num_residual):
        low = _bottleneck(low, filters, f"{prefix}_low3_{r}")
    size = (int(low.shape[1]) * 2, int(low.shape[2]) * 2)
    up2 = layers.Resizing(*size, interpolation="nearest", name=f"{prefix}_up")(low)
    return layers.Add(name=f"{prefix}_merge")([up1, up2])


def build_hourglass(
    input_size: tuple[int, int] = (256, 256),
    num_joints: int = 16,
    num_stacks: int = 4,
    num_filters: int = 256,
    num_residual: int = 1,
    order: int = 4,
    batch_size: int | None = None,
    name: str = "hourglass",
) -> Any:
    """Stacked hourglass with output stride 4 and ``num_stacks`` heatmap outputs.

    ``input_size`` must be divisible by 4 * 2**order. ``batch_size=1`` gives the
    static-shape export model; ``None`` a trainable one.
    """
    import keras
    from keras import layers

    from edgepose.core.errors import ConfigError

    if num_filters < 8 or num_filters % 4:
        raise ConfigError(f"hourglass --filters {num_filters}: use a multiple of 4, at least 8 "
                          "(the stem uses filters/4 and the residual blocks filters/2)")
    h, w = input_size
    step = 4 * 2**order
    if h % step or w % step:
        raise ConfigError(
            f"hourglass input size {h}x{w} is not divisible by {step} (4 * 2**order, order={order}); "
            f"use a multiple of {step} such as {step * max(1, round(h / step))}"
        )
    inputs = keras.Input(shape=(h, w, 3), batch_size=batch_size, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(inputs)
    x = layers.Conv2D(num_filters // 4, 7, strides=2, padding="same", name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = _bottleneck(x, num_filters // 2, "stem_res0")
    x = layers.MaxPool2D(2, 2, name="stem_pool")(x)
    x = _bottleneck(x, num_filters // 2, "stem_res1")
    x = _bottleneck(x, num_filters, "stem_res2")
    outputs = []
    for s in range(num_stacks):
        y = _hourglass(x, order, num_filters, num_residual, f"hg{s}")
        for r in range(num_residual):
            y = _bottleneck(y, num_filters, f"hg{s}_out{r}")
        y = layers.Conv2D(num_filters, 1, name=f"hg{s}_lin_conv")(y)
        y = layers.BatchNormalization(momentum=0.9, name=f"hg{s}_lin_bn")(y)
        y = layers.ReLU(name=f"hg{s}_lin_relu")(y)
        heatmaps = layers.Conv2D(num_joints, 1, name=f"heatmaps_{s}")(y)
        outputs.append(heatmaps)
        if s < num_stacks - 1:
            back_features = layers.Conv2D(num_filters, 1, name=f"hg{s}_remap_feat")(y)
            back_heatmaps = layers.Conv2D(num_filters, 1, name=f"hg{s}_remap_hm")(heatmaps)
            x = layers.Add(name=f"hg{s}_next")([x, back_features, back_heatmaps])
    return keras.Model(inputs, outputs, name=name)
