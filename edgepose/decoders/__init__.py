"""Pure pose decoders: model outputs + the input->source transform in, ``Poses`` out.

``get_decoder(kind)(outputs, transform, **params)``; kinds are the keys of ``DECODERS``.
No interpreter inside, so each decoder is tested on saved or freshly computed tensors.
"""

from __future__ import annotations

from edgepose.decoders import heatmap, movenet
from edgepose.decoders.base import Decoder, OutputTensor, as_outputs, outputs_error
from edgepose.decoders.posenet import decode_single as _posenet_single
from edgepose.decoders.posenet_multi import decode_multi as _posenet_multi
from edgepose.errors import ConfigError

DECODERS: dict[str, Decoder] = {
    "movenet": movenet.decode,
    "posenet_single": _posenet_single,
    "posenet_multi": _posenet_multi,
    "heatmap": heatmap.decode,
}


def get_decoder(kind: str) -> Decoder:
    """The decoder function for a manifest's ``decoder`` kind."""
    try:
        return DECODERS[kind]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown decoder {kind!r}; expected one of {', '.join(DECODERS)} "
            "(fix `decoder` in the model's manifest or --decoder)"
        ) from None


__all__ = ["DECODERS", "Decoder", "OutputTensor", "as_outputs", "get_decoder", "outputs_error"]
