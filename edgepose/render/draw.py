"""Draw skeletons onto RGB frames with OpenCV: for `edgepose detect --output`,
recordings and snapshots (the live TV view is drawn by pygame at screen resolution)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import RenderError
from edgepose.core.opencv import import_cv2
from edgepose.core.pose import Poses

Point = tuple[int, int]
Rgb = tuple[int, int, int]


def default_thickness(height: int, width: int) -> int:
    """Line width that stays visible on a TV: about 1/200 of the shorter side, at least 2."""
    return max(2, round(min(height, width) / 200))


def skeleton_segments(
    poses: Poses, keypoint_threshold: float
) -> Iterator[tuple[str, Rgb, npt.NDArray[np.float32], npt.NDArray[np.float32] | None]]:
    """What to draw, in drawing order: ("edge", colour, a, b) for edges whose two ends
    score at least the threshold, then ("point", colour, xy, None) for such keypoints.

    Shared by the OpenCV and pygame renderers so both draw exactly the same skeleton.
    """
    schema = poses.schema_info
    for i in range(len(poses)):
        xy, ok = poses.xy[i], poses.scores[i] >= keypoint_threshold
        ok &= np.isfinite(xy).all(axis=1)
        for (a, b), colour in zip(schema.edges, schema.edge_colors):
            if ok[a] and ok[b]:
                yield "edge", colour, xy[a], xy[b]
        for k, colour in enumerate(schema.keypoint_colors):
            if ok[k]:
                yield "point", colour, xy[k], None


def _pt(xy: npt.NDArray[np.float32]) -> Point:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def annotate(
    image: npt.NDArray[np.uint8],
    poses: Poses,
    keypoint_threshold: float = 0.3,
    thickness: int | None = None,
) -> npt.NDArray[np.uint8]:
    """A new RGB copy of ``image`` with the skeletons drawn in the schema's colours.

    Keypoints scoring at least ``keypoint_threshold`` get a dot; an edge is drawn when
    both of its ends do. ``poses`` are in the image's pixels. The input is not modified.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise RenderError(
            f"annotate: image is {image.dtype} {list(image.shape)}; expected an RGB uint8 "
            "array of shape (height, width, 3)"
        )
    cv2 = import_cv2(RenderError)
    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    t = default_thickness(h, w) if thickness is None else max(1, int(thickness))
    radius = max(2, round(t * 1.5))
    for kind, colour, a, b in skeleton_segments(poses, keypoint_threshold):
        if kind == "edge" and b is not None:
            cv2.line(out, _pt(a), _pt(b), colour, t, cv2.LINE_AA)
        else:
            cv2.circle(out, _pt(a), radius, colour, -1, cv2.LINE_AA)
    return out

