"""Person boxes and crops: where a second-stage model looks, and the transform back.

A ``Box`` is a region of the source frame in pixels (x0, y0, x1, y1) with a score. Boxes
come from a proposer (PoseNet poses, a person detector) or from the previous frame's
poses; ``crop_resize`` cuts a box out of the frame at a model's input size and returns
the ``Transform`` that maps the model's pixels back to the frame, so decoders run on
crops exactly as on whole frames (``Transform.to_source`` is still the one place).
Regions that reach past the frame's edges are padded with zeros, as
``tf.image.crop_and_resize`` does in TF's MoveNet tutorial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from edgepose.errors import ModelError
from edgepose.pose import Poses
from edgepose.preprocess import Transform

Interpolation = Literal["bilinear", "nearest"]
MIN_CROP_SIDE = 8.0  # px: a smaller box is a decoding accident, not a person


@dataclass(frozen=True)
class Box:
    """A region of the source frame in pixels, corners (x0, y0) and (x1, y1), and a score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def as_array(self) -> npt.NDArray[np.float32]:
        return np.array([self.x0, self.y0, self.x1, self.y1], np.float32)

    @classmethod
    def around(cls, cx: float, cy: float, width: float, height: float | None = None,
               score: float = 1.0) -> Box:
        """The box of that size centred at (cx, cy) (square when ``height`` is None)."""
        h = width if height is None else height
        return cls(cx - width / 2, cy - h / 2, cx + width / 2, cy + h / 2, score)

    def scaled(self, factor: float) -> Box:
        """Grown (or shrunk) by ``factor`` about its centre: a margin around a person."""
        cx, cy = self.center
        return Box.around(cx, cy, self.width * factor, self.height * factor, self.score)

    def squared(self) -> Box:
        """The square of side max(width, height) with the same centre (models take square
        person crops; stretching a tall box would distort the body)."""
        cx, cy = self.center
        return Box.around(cx, cy, max(self.width, self.height), score=self.score)

    def clipped(self, height: int, width: int) -> Box:
        """Kept within reach of a height x width frame without changing its shape: the
        side is at most the frame's longer side and the centre lies inside the frame, so
        a crop never is mostly padding (the part past the edges is padded by the crop)."""
        w = min(self.width, float(max(height, width)))
        h = min(self.height, float(max(height, width)))
        cx = min(max(self.center[0], 0.0), float(width))
        cy = min(max(self.center[1], 0.0), float(height))
        return Box.around(cx, cy, w, h, self.score)

    def iou(self, other: Box) -> float:
        iw = min(self.x1, other.x1) - max(self.x0, other.x0)
        ih = min(self.y1, other.y1) - max(self.y0, other.y0)
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        return inter / (self.area + other.area - inter)


def pose_box(xy: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
             keypoint_threshold: float = 0.2, score: float | None = None) -> Box | None:
    """The tight box around one pose's keypoints scoring at least the threshold (None
    when fewer than two do: one point says where, not how big)."""
    ok = scores >= keypoint_threshold
    if int(ok.sum()) < 2:
        return None
    pts = xy[ok]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    s = float(scores[ok].mean()) if score is None else score
    return Box(float(x0), float(y0), float(x1), float(y1), s)


def person_boxes(poses: Poses, image_size: tuple[int, int], margin: float = 1.4,
                 keypoint_threshold: float = 0.2) -> list[Box]:
    """One square crop box per pose: its keypoints' box grown by ``margin``, squared and
    clipped to the frame (``image_size`` = (height, width)); the box's score is the
    pose's. Poses with fewer than two keypoints above the threshold give no box."""
    out = []
    for i in range(len(poses)):
        b = pose_box(poses.xy[i], poses.scores[i], keypoint_threshold, float(poses.pose_scores[i]))
        if b is None:
            continue
        b = b.scaled(margin).squared().clipped(*image_size)
        if b.width >= MIN_CROP_SIDE:
            out.append(b)
    return out


# TF's MoveNet tutorial ("cropping algorithm"): keypoints count from score 0.2; the crop
# is a square centred on the hips' midpoint, half-side the larger of 1.9x the torso's
# and 1.2x the whole body's reach from there.
TORSO_EXPANSION = 1.9
BODY_EXPANSION = 1.2


def torso_box(xy: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
              image_size: tuple[int, int], schema: str = "coco17",
              keypoint_threshold: float = 0.2) -> Box | None:
    """Where to look for this person in the next frame, as TF's MoveNet tutorial does.

    None when the torso is not seen (no hip or no shoulder scoring above the threshold)
    or the square would exceed the frame: then the whole frame is the better input.
    The half-side is capped at the centre's farthest distance to an edge.
    """
    from edgepose.schemas import get_schema

    kp = get_schema(schema).keypoints
    hips = [int(kp["LEFT_HIP"]), int(kp["RIGHT_HIP"])]
    shoulders = [int(kp["LEFT_SHOULDER"]), int(kp["RIGHT_SHOULDER"])]
    seen = scores > keypoint_threshold
    if not (seen[hips].any() and seen[shoulders].any()):
        return None
    h, w = image_size
    cx, cy = (xy[hips[0]] + xy[hips[1]]) / 2
    torso = np.abs(xy[hips + shoulders] - (cx, cy)).max()
    body = np.abs(xy[scores >= keypoint_threshold] - (cx, cy)).max()
    half = max(float(torso) * TORSO_EXPANSION, float(body) * BODY_EXPANSION)
    half = min(half, max(cx, w - cx, cy, h - cy))
    if half > max(h, w) / 2 or half * 2 < MIN_CROP_SIDE:
        return None
    return Box.around(float(cx), float(cy), 2 * half, score=float(scores.mean()))


def _warp(image: npt.NDArray[np.uint8], t: Transform, size: tuple[int, int],
          interpolation: Interpolation) -> npt.NDArray[np.uint8]:
    """Sample ``image`` at every output pixel's centre through ``t`` (zeros outside)."""
    h, w = size
    try:
        import cv2
    except ImportError:
        cv2 = None  # type: ignore[assignment]
    if cv2 is not None:
        # Output pixel centre u + 0.5 comes from source (u + 0.5 - offset) / scale, i.e.
        # source pixel index u / scale + (0.5 - offset) / scale - 0.5.
        inv = np.array([[1 / t.scale_x, 0, (0.5 - t.offset_x) / t.scale_x - 0.5],
                        [0, 1 / t.scale_y, (0.5 - t.offset_y) / t.scale_y - 0.5]], np.float64)
        flag = cv2.INTER_NEAREST if interpolation == "nearest" else cv2.INTER_LINEAR
        return np.asarray(cv2.warpAffine(image, inv, (w, h), flags=flag | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)), np.uint8)
    # Without OpenCV: PIL's affine transform samples the same way (continuous
    # coordinates, pixel centres at +0.5, zeros outside).
    from PIL import Image

    data = (1 / t.scale_x, 0.0, -t.offset_x / t.scale_x, 0.0, 1 / t.scale_y, -t.offset_y / t.scale_y)
    flag = Image.NEAREST if interpolation == "nearest" else Image.BILINEAR
    out = Image.fromarray(image).transform((w, h), Image.AFFINE, data, resample=flag, fillcolor=(0, 0, 0))
    return np.asarray(out)


def _cut(image: npt.NDArray[np.uint8], x0: int, y0: int, x1: int, y1: int) -> npt.NDArray[np.uint8]:
    """image[y0:y1, x0:x1] with zeros where the region leaves the image."""
    out = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    h, w = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _check(image: npt.NDArray[np.uint8], box: Box) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ModelError(f"expected an RGB frame of shape (H, W, 3), got {image.shape}")
    if not (box.width > 0 and box.height > 0 and np.isfinite(box.as_array()).all()):
        raise ModelError(f"cannot crop an empty or undefined box {box}")


def crop_resize(image: npt.NDArray[np.uint8], box: Box, size: tuple[int, int],
                interpolation: Interpolation = "bilinear") -> tuple[npt.NDArray[np.uint8], Transform]:
    """``box`` of ``image`` resized to ``size`` = (height, width) in one resampling, and
    the Transform from the source frame to that crop's pixels."""
    _check(image, box)
    t = Transform.for_crop(box.x0, box.y0, box.x1, box.y1, size, image.shape[:2])
    return _warp(image, t, size, interpolation), t


def crop(image: npt.NDArray[np.uint8], box: Box) -> tuple[npt.NDArray[np.uint8], Transform]:
    """``box`` of ``image`` at the source resolution (corners rounded to whole pixels,
    zero-padded past the edges), and the Transform from the frame to the crop."""
    _check(image, box)
    x0, y0 = int(round(box.x0)), int(round(box.y0))
    x1, y1 = max(int(round(box.x1)), x0 + 1), max(int(round(box.y1)), y0 + 1)
    t = Transform.for_crop(x0, y0, x1, y1, (y1 - y0, x1 - x0), image.shape[:2])
    return _cut(image, x0, y0, x1, y1), t


def to_source(poses: Poses, transform: Transform) -> Poses:
    """``poses`` found in a crop's pixels, in the source frame's pixels."""
    return Poses(transform.to_source(poses.xy), poses.scores, poses.pose_scores, poses.schema,
                 poses.track_ids)
