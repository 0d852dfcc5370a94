"""Pure pose decoders: model outputs + the input->source transform in, ``Poses`` out.

The one registry of decoder kinds: ``DECODERS`` maps each kind to a ``DecoderInfo``
(function, keypoint schemas it produces, whether it finds several people, the
parameters it takes). Manifests, the CLIs' ``--decoder`` choices and the estimators read
it; nothing else lists decoder kinds. ``get_decoder(kind)(outputs, transform, **params)``.
No interpreter inside, so each decoder is tested on saved or freshly computed tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepose.core.errors import ConfigError
from edgepose.core.schemas import SCHEMAS
from edgepose.decoders import heatmap, movenet, multipose
from edgepose.decoders.base import Decoder, OutputTensor, as_outputs, outputs_error
from edgepose.decoders.posenet import SINGLE_PARAMS
from edgepose.decoders.posenet import decode_single as _posenet_single
from edgepose.decoders.posenet_multi import MULTI_PARAMS
from edgepose.decoders.posenet_multi import decode_multi as _posenet_multi


@dataclass(frozen=True)
class DecoderInfo:
    """What the runtime knows about one decoder kind.

    ``multi_pose``: finds every person in the input (PoseNet multi-pose), else one pose
    per input; single-pose models are the ones that gain from a crop around the person
    (top-down pipelines, temporal crops). ``params``: the ``[decoder_params]`` keys it
    accepts (``schema`` included).
    """

    kind: str
    function: Decoder
    schemas: tuple[str, ...]
    multi_pose: bool
    params: tuple[str, ...]


DECODERS: dict[str, DecoderInfo] = {d.kind: d for d in (
    # MoveNet SinglePose: the model decodes, keypoints are rescaled
    DecoderInfo("movenet", movenet.decode, ("coco17",), False, movenet.PARAMS),
    # PoseNet heatmap argmax + short offsets, one pose
    DecoderInfo("posenet_single", _posenet_single, ("coco17",), False, SINGLE_PARAMS),
    # PoseNet multi-pose (Coral's PosenetDecoderOp algorithm)
    DecoderInfo("posenet_multi", _posenet_multi, ("coco17",), True, MULTI_PARAMS),
    # heatmap argmax (Simple Baselines, Stacked Hourglass), one pose
    DecoderInfo("heatmap", heatmap.decode, tuple(SCHEMAS), False, heatmap.PARAMS),
    # MoveNet MultiPose Lightning cut at its six heads (Edge TPU), the graph's tail in numpy
    DecoderInfo("multipose", multipose.decode, ("coco17",), True, multipose.PARAMS),
)}
DECODER_KINDS: tuple[str, ...] = tuple(DECODERS)


def decoder_info(kind: str) -> DecoderInfo:
    """The registry entry for a manifest's ``decoder`` kind."""
    try:
        return DECODERS[kind]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown decoder {kind!r}; expected one of {', '.join(DECODERS)} "
            "(fix `decoder` in the model's manifest or --decoder)"
        ) from None


def get_decoder(kind: str) -> Decoder:
    """The decoder function for a manifest's ``decoder`` kind."""
    return decoder_info(kind).function


__all__ = ["DECODERS", "DECODER_KINDS", "Decoder", "DecoderInfo", "OutputTensor", "as_outputs",
           "decoder_info", "get_decoder", "outputs_error"]
