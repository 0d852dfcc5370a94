"""MoveNet SinglePose (Lightning / Thunder): the model already decodes, we only rescale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.decoders.base import (
    OutputTensor,
    check_params,
    check_schema,
    model_size,
    outputs_error,
)

EXPECTED = "one MoveNet SinglePose output [1,1,17,3] = (y, x, score) per keypoint"
PARAMS = ("schema",)


def decode(outputs: Sequence[OutputTensor], transform: Transform, **params: Any) -> Poses:
    """One pose from ``[1, 1, 17, 3]`` = (y, x, score), y and x normalised to the input.

    Input pixels are ``x * W_in`` and ``y * H_in`` (``transform.model_size`` = (H_in,
    W_in)); pose score = mean keypoint score, as in the TF Hub MoveNet examples.
    """
    check_params("movenet", params, PARAMS)
    check_schema("movenet", params.get("schema", "coco17"), ("coco17",))
    found = [o for o in outputs if o.shape in ((1, 1, 17, 3), (1, 17, 3))]
    if len(found) != 1:
        raise outputs_error("movenet", outputs, EXPECTED)
    out = found[0].dequantize().reshape(17, 3)
    h_in, w_in = model_size("movenet", transform)
    xy = np.stack([out[:, 1] * w_in, out[:, 0] * h_in], axis=-1)[None]
    scores = np.clip(out[:, 2], 0.0, 1.0)[None]
    return Poses(transform.to_source(xy), scores, scores.mean(axis=1), schema="coco17")
