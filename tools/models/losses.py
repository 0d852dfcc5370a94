"""The tutorial's foreground-weighted heatmap MSE.

Heatmap targets are mostly zeros; an unweighted MSE is minimised by predicting zeros
everywhere. Pixels where the target is > 0 (the Gaussian patches) weigh ``fg_weight``
(82 in the tutorial: 81 * [target > 0] + 1), the background 1.
"""

from __future__ import annotations

import functools
from typing import Any

FG_WEIGHT = 82.0


@functools.cache
def loss_class() -> type:
    """The Keras loss class, defined on first use so importing tools needs no Keras."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="edgepose")
    class ForegroundWeightedMSE(keras.losses.Loss):
        """Mean over pixels of ``w * (y_true - y_pred)**2``, w = fg_weight where y_true > 0."""

        def __init__(self, fg_weight: float = FG_WEIGHT, name: str = "fg_weighted_mse", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            self.fg_weight = float(fg_weight)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            y_true = ops.cast(y_true, y_pred.dtype)
            weights = ops.where(y_true > 0, self.fg_weight, 1.0)
            return ops.mean(ops.square(y_true - y_pred) * weights, axis=(1, 2, 3))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "fg_weight": self.fg_weight}

    return ForegroundWeightedMSE


def foreground_weighted_mse(fg_weight: float = FG_WEIGHT) -> Any:
    """A ForegroundWeightedMSE loss instance."""
    return loss_class()(fg_weight=fg_weight)
