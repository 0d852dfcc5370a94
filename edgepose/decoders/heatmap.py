"""Heatmap argmax for Simple Baselines / Stacked Hourglass style models (single pose).

Conventions (those of Simple Baselines' ``get_final_preds``):

- Output(s) ``[1, h, w, K]`` with K = 17 (coco17) or 16 (mpii16) matching ``schema``;
  a multi-output hourglass gives one output per stack: the LAST one that fits is used.
- Per channel: the argmax cell, then a quarter-pixel step toward the higher neighbour,
  ``x += 0.25 * sign(hm[y, x+1] - hm[y, x-1])`` (and the same for y), on each axis where
  both neighbours exist.
- Heatmap -> input pixels: ``x_in = x_hm * W_in / w``, ``y_in = y_hm * H_in / h``.
- Score = the (averaged) heatmap maximum clipped to [0, 1]; pose score = their mean.
- Flip test: ``flipped`` = the outputs for the horizontally mirrored input. They are
  mirrored back (x axis reversed, left/right channels swapped with
  ``Schema.flip_index()``), shifted one pixel right when ``flip_shift`` (as Simple
  Baselines does, to undo the mirrored pixel grid's offset), and averaged with the normal
  heatmaps before the argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.core.schemas import SCHEMAS, get_schema
from edgepose.decoders.base import OutputTensor, check_params, model_size, outputs_error

PARAMS = ("schema", "flipped", "flip_shift")


def _last_stack(
    outputs: Sequence[OutputTensor], k: int, schema: str, what: str = "outputs"
) -> npt.NDArray[np.float32]:
    fits = [o for o in outputs if len(o.shape) == 4 and o.shape[0] == 1 and o.shape[3] == k]
    if not fits or min(fits[-1].shape[1:3]) < 1:
        hint = ""
        if any(len(o.shape) == 4 and o.shape[1] == k for o in outputs):
            hint = " (these look channels-first [1,K,h,w]: convert the model to NHWC)"
        raise outputs_error(
            "heatmap", outputs, f"{what}: heatmaps [1,h,w,{k}] for schema {schema!r}{hint}"
        )
    return fits[-1].dequantize()[0]


def flip_back(heat: npt.NDArray[np.float32], flip_index: npt.NDArray[np.int64],
              shift: bool = True) -> npt.NDArray[np.float32]:
    """Heatmaps [h, w, K] of a mirrored input -> heatmaps in the original frame."""
    out = heat[:, ::-1, flip_index]
    if shift:
        out = np.concatenate([out[:, :1], out[:, :-1]], axis=1)
    return out


def decode(outputs: Sequence[OutputTensor], transform: Transform, **params: Any) -> Poses:
    """One pose from keypoint heatmaps (see the module docstring for the conventions).

    Params: ``schema`` ("coco17"), ``flipped`` (None, or the flipped pass's outputs),
    ``flip_shift`` (True).
    """
    check_params("heatmap", params, PARAMS)
    schema_name = params.get("schema", "coco17")
    if schema_name not in SCHEMAS:
        raise ConfigError(
            f"decoder 'heatmap': unknown schema {schema_name!r}; "
            f"expected one of {', '.join(SCHEMAS)}"
        )
    schema = get_schema(schema_name)
    k = schema.num_keypoints
    heat = _last_stack(outputs, k, schema_name)
    flipped = params.get("flipped")
    if flipped is not None:
        back = _last_stack(flipped, k, schema_name, "flipped outputs")
        if back.shape != heat.shape:
            raise outputs_error(
                "heatmap", flipped, f"flipped heatmaps of the same shape as {list(heat.shape)}"
            )
        heat = ((heat + flip_back(back, schema.flip_index(), params.get("flip_shift", True))) / 2).astype(
            np.float32, copy=False)
    h, w = heat.shape[:2]
    ks = np.arange(k)
    ys, xs = np.divmod(heat.reshape(h * w, k).argmax(axis=0), w)
    peak = heat[ys, xs, ks]
    dx = heat[ys, np.minimum(xs + 1, w - 1), ks] - heat[ys, np.maximum(xs - 1, 0), ks]
    dy = heat[np.minimum(ys + 1, h - 1), xs, ks] - heat[np.maximum(ys - 1, 0), xs, ks]
    x = xs + 0.25 * np.sign(dx) * ((xs > 0) & (xs < w - 1))
    y = ys + 0.25 * np.sign(dy) * ((ys > 0) & (ys < h - 1))
    h_in, w_in = model_size("heatmap", transform)
    xy = np.stack([x * (w_in / w), y * (h_in / h)], axis=-1)[None]
    scores = np.clip(peak, 0.0, 1.0)[None]
    return Poses(transform.to_source(xy), scores, scores.mean(axis=1), schema=schema_name)
