"""Keypoint schemas: COCO-17 and MPII-16 names, skeleton edges, left/right pairs, colours."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Coco(IntEnum):
    NOSE = 0
    LEFT_EYE = 1
    RIGHT_EYE = 2
    LEFT_EAR = 3
    RIGHT_EAR = 4
    LEFT_SHOULDER = 5
    RIGHT_SHOULDER = 6
    LEFT_ELBOW = 7
    RIGHT_ELBOW = 8
    LEFT_WRIST = 9
    RIGHT_WRIST = 10
    LEFT_HIP = 11
    RIGHT_HIP = 12
    LEFT_KNEE = 13
    RIGHT_KNEE = 14
    LEFT_ANKLE = 15
    RIGHT_ANKLE = 16


class Mpii(IntEnum):
    RIGHT_ANKLE = 0
    RIGHT_KNEE = 1
    RIGHT_HIP = 2
    LEFT_HIP = 3
    LEFT_KNEE = 4
    LEFT_ANKLE = 5
    PELVIS = 6
    THORAX = 7
    NECK = 8
    HEAD_TOP = 9
    RIGHT_WRIST = 10
    RIGHT_ELBOW = 11
    RIGHT_SHOULDER = 12
    LEFT_SHOULDER = 13
    LEFT_ELBOW = 14
    LEFT_WRIST = 15


Rgb = tuple[int, int, int]

# Colours by body side, so a mirrored image is easy to read on the TV.
LEFT: Rgb = (0, 200, 255)    # cyan-blue
RIGHT: Rgb = (255, 140, 0)   # orange
CENTER: Rgb = (60, 230, 60)  # green


@dataclass(frozen=True)
class Schema:
    """One keypoint layout: names, skeleton edges (0-based pairs), flip pairs, colours."""

    name: str
    keypoints: type[IntEnum]
    edges: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    edge_colors: tuple[Rgb, ...]
    keypoint_colors: tuple[Rgb, ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name.lower() for k in self.keypoints)

    def flip_index(self) -> npt.NDArray[np.int64]:
        """Index array that swaps left and right keypoints (for flip augmentation/test)."""
        idx = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx


def _side(name: str) -> Rgb:
    if name.startswith("LEFT"):
        return LEFT
    if name.startswith("RIGHT"):
        return RIGHT
    return CENTER


def _edge_color(kp: type[IntEnum], a: int, b: int) -> Rgb:
    ca, cb = _side(kp(a).name), _side(kp(b).name)
    return ca if ca == cb else CENTER


def _pairs(kp: type[IntEnum]) -> tuple[tuple[int, int], ...]:
    out = []
    for k in kp:
        if k.name.startswith("LEFT_"):
            out.append((int(k), int(kp["RIGHT_" + k.name[5:]])))
    return tuple(out)


def _schema(name: str, kp: type[IntEnum], edges: list[tuple[IntEnum, IntEnum]]) -> Schema:
    e = tuple((int(a), int(b)) for a, b in edges)
    return Schema(
        name=name,
        keypoints=kp,
        edges=e,
        flip_pairs=_pairs(kp),
        edge_colors=tuple(_edge_color(kp, a, b) for a, b in e),
        keypoint_colors=tuple(_side(k.name) for k in kp),
    )


C = Coco
COCO17 = _schema("coco17", Coco, [
    (C.LEFT_ANKLE, C.LEFT_KNEE), (C.LEFT_KNEE, C.LEFT_HIP),
    (C.RIGHT_ANKLE, C.RIGHT_KNEE), (C.RIGHT_KNEE, C.RIGHT_HIP),
    (C.LEFT_HIP, C.RIGHT_HIP), (C.LEFT_SHOULDER, C.LEFT_HIP), (C.RIGHT_SHOULDER, C.RIGHT_HIP),
    (C.LEFT_SHOULDER, C.RIGHT_SHOULDER), (C.LEFT_SHOULDER, C.LEFT_ELBOW),
    (C.RIGHT_SHOULDER, C.RIGHT_ELBOW), (C.LEFT_ELBOW, C.LEFT_WRIST),
    (C.RIGHT_ELBOW, C.RIGHT_WRIST), (C.LEFT_EYE, C.RIGHT_EYE), (C.NOSE, C.LEFT_EYE),
    (C.NOSE, C.RIGHT_EYE), (C.LEFT_EYE, C.LEFT_EAR), (C.RIGHT_EYE, C.RIGHT_EAR),
    (C.LEFT_EAR, C.LEFT_SHOULDER), (C.RIGHT_EAR, C.RIGHT_SHOULDER),
])

M = Mpii
MPII16 = _schema("mpii16", Mpii, [
    (M.RIGHT_ANKLE, M.RIGHT_KNEE), (M.RIGHT_KNEE, M.RIGHT_HIP), (M.RIGHT_HIP, M.PELVIS),
    (M.LEFT_HIP, M.PELVIS), (M.LEFT_KNEE, M.LEFT_HIP), (M.LEFT_ANKLE, M.LEFT_KNEE),
    (M.PELVIS, M.THORAX), (M.THORAX, M.NECK), (M.NECK, M.HEAD_TOP),
    (M.RIGHT_WRIST, M.RIGHT_ELBOW), (M.RIGHT_ELBOW, M.RIGHT_SHOULDER),
    (M.RIGHT_SHOULDER, M.THORAX), (M.LEFT_SHOULDER, M.THORAX),
    (M.LEFT_ELBOW, M.LEFT_SHOULDER), (M.LEFT_WRIST, M.LEFT_ELBOW),
])

SCHEMAS: dict[str, Schema] = {s.name: s for s in (COCO17, MPII16)}

# MPII joint -> COCO keypoint, for the 12 limb joints both layouts share.
MPII_TO_COCO: dict[int, int] = {
    int(M.RIGHT_ANKLE): int(C.RIGHT_ANKLE), int(M.RIGHT_KNEE): int(C.RIGHT_KNEE),
    int(M.RIGHT_HIP): int(C.RIGHT_HIP), int(M.LEFT_HIP): int(C.LEFT_HIP),
    int(M.LEFT_KNEE): int(C.LEFT_KNEE), int(M.LEFT_ANKLE): int(C.LEFT_ANKLE),
    int(M.RIGHT_WRIST): int(C.RIGHT_WRIST), int(M.RIGHT_ELBOW): int(C.RIGHT_ELBOW),
    int(M.RIGHT_SHOULDER): int(C.RIGHT_SHOULDER), int(M.LEFT_SHOULDER): int(C.LEFT_SHOULDER),
    int(M.LEFT_ELBOW): int(C.LEFT_ELBOW), int(M.LEFT_WRIST): int(C.LEFT_WRIST),
}


def get_schema(name: str) -> Schema:
    """Look a schema up by name ("coco17", "mpii16")."""
    from edgepose.core.errors import ConfigError

    try:
        return SCHEMAS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown keypoint schema {name!r}; expected one of {', '.join(SCHEMAS)}"
        ) from None
