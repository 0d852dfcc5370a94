"""Each decoder's parameter checks at their boundaries: a value just inside is taken (the
decoder goes on and fails only on the empty outputs, a ModelError), a value just outside
is a ConfigError naming the parameter (a manifest typo is caught before any decoding)."""

from __future__ import annotations

from typing import Any

import pytest

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.preprocess import Transform
from edgepose.decoders import get_decoder

TAKEN = [
    ("posenet_multi", "max_detections", 1),
    ("posenet_multi", "score_threshold", 0.001),
    ("posenet_multi", "score_threshold", 0.999),
    ("posenet_multi", "nms_radius", 0),
    ("posenet_multi", "nms_radius", 0.5),
    ("posenet_multi", "local_maximum_radius", 0),
    ("posenet_multi", "refine_steps", 0),
    ("posenet_multi", "output_stride", 1),
    ("posenet_multi", "coral_edge16", True),
    ("posenet_single", "output_stride", 1),
    ("multipose", "max_detections", 1),
    ("multipose", "keypoint_threshold", 0.0),
    ("multipose", "keypoint_threshold", 0.999),
    ("multipose", "min_pose_score", 0.0),
    ("multipose", "min_pose_score", 0.999),
]
REFUSED = [
    ("posenet_multi", "max_detections", 0),
    ("posenet_multi", "max_detections", 2.0),
    ("posenet_multi", "max_detections", True),
    ("posenet_multi", "refine_steps", False),
    ("posenet_multi", "nms_radius", True),
    ("posenet_multi", "coral_edge16", "no"),
    ("posenet_multi", "score_threshold", 0.0),
    ("posenet_multi", "score_threshold", 1.0),
    ("posenet_multi", "score_threshold", "0.5"),
    ("posenet_multi", "nms_radius", -0.5),
    ("posenet_multi", "local_maximum_radius", -1),
    ("posenet_multi", "refine_steps", -1),
    ("posenet_multi", "refine_steps", 1.5),
    ("posenet_multi", "output_stride", 0),
    ("posenet_single", "output_stride", 0),
    ("posenet_single", "output_stride", 16.0),
    ("posenet_single", "output_stride", True),
    ("multipose", "max_detections", 0),
    ("multipose", "max_detections", True),
    ("multipose", "max_detections", 6.0),
    ("multipose", "keypoint_threshold", -0.01),
    ("multipose", "keypoint_threshold", 1.0),
    ("multipose", "min_pose_score", 1.0),
    ("multipose", "min_pose_score", False),
]


def _decode(kind: str, **params: Any) -> None:
    get_decoder(kind)([], Transform.identity(64, 64), **params)


@pytest.mark.parametrize("kind, name, value", TAKEN)
def test_a_value_just_inside_is_taken(kind: str, name: str, value: Any) -> None:
    with pytest.raises(ModelError, match=f"decoder '{kind}'"):
        _decode(kind, **{name: value})


@pytest.mark.parametrize("kind, name, value", REFUSED)
def test_a_value_just_outside_is_a_config_error_naming_it(kind: str, name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"{kind}'?:? {name} must be") as info:
        _decode(kind, **{name: value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("kind", ["movenet", "posenet_single", "posenet_multi", "multipose", "heatmap"])
def test_an_unknown_parameter_is_refused_by_its_decoders_name(kind: str) -> None:
    with pytest.raises(ConfigError, match=f"^decoder '{kind}' has no parameter 'nope'"):
        _decode(kind, nope=1)
