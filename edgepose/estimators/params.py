"""The ``[params]`` of a ``kind = "topdown"`` manifest, checked (see
``edgepose.estimators.topdown`` for what each one does)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from edgepose.core.errors import ConfigError


@dataclass(frozen=True)
class TopDownParams:
    """The ``[params]`` of a ``kind = "topdown"`` manifest (see the module docstring)."""

    proposal_interval: int = 5
    max_people: int = 6
    crop_margin: float = 1.4
    keypoint_threshold: float = 0.2
    nms_oks: float = 0.5
    match_oks: float = 0.3
    min_pose_score: float = 0.2
    refine_below: float = 0.3
    full_frame_proposal: bool = False
    full_frame_fallback: bool = True
    proposer_weight: float = 0.0
    agreement_weight: float = 0.3
    steady_iou: float = 0.8
    steady_drop: float = 0.02

    @classmethod
    def from_dict(cls, params: dict[str, Any], origin: str = "topdown manifest") -> TopDownParams:
        """Checked values; a bad one is a ConfigError naming the manifest and the key."""
        known = {f.name: f for f in fields(cls)}
        for key, value in params.items():
            if key not in known:
                raise ConfigError(f"{origin}: [params] has no {key!r}; expected some of "
                                  f"{', '.join(known)}")
            rule = _RULES[key]
            if not rule[0](value):
                raise ConfigError(f"{origin}: [params] {key} = {value!r}; expected {rule[1]}")
        return cls(**params)


def _int_from_1(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _fraction(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0


_RULES = {
    "proposal_interval": (_int_from_1, "an integer >= 1 (frames between proposals)"),
    "max_people": (_int_from_1, "an integer >= 1"),
    "crop_margin": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                    and 1.0 <= v <= 3.0, "a number from 1.0 to 3.0"),
    "keypoint_threshold": (_fraction, "a score from 0 to below 1"),
    "nms_oks": (lambda v: _fraction(v) and v > 0, "an OKS above 0 and below 1"),
    "match_oks": (lambda v: _fraction(v) and v > 0, "an OKS above 0 and below 1"),
    "min_pose_score": (_fraction, "a score from 0 to below 1"),
    "refine_below": (lambda v: _fraction(v) or v == 1, "a score from 0 to 1"),
    "full_frame_proposal": (lambda v: isinstance(v, bool), "true or false"),
    "full_frame_fallback": (lambda v: isinstance(v, bool), "true or false"),
    "agreement_weight": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
                         "a weight from 0 to 1"),
    "steady_iou": (lambda v: _fraction(v) or v == 1, "an IoU from 0 to 1 (1: always re-crop)"),
    "steady_drop": (_fraction, "a score drop from 0 to below 1"),
    "proposer_weight": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 2,
                        "a weight from 0 (proposer poses never kept) to 2"),
}
