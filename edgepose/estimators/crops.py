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

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Interpolation, Transform, check_rgb, paste, warp
from edgepose.core.schemas import get_schema

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
        corners = [[b.x0, b.y0, b.x1, b.y1] for b in (self, other)]
        return float(box_iou(np.array(corners[:1]), np.array(corners[1:]))[0, 0])


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(len(a), len(b)) IoU of x0, y0, x1, y1 boxes; NaN boxes overlap nothing."""
    a64 = np.nan_to_num(np.asarray(a, np.float64), nan=0.0)[:, None, :]
    b64 = np.nan_to_num(np.asarray(b, np.float64), nan=0.0)[None, :, :]
    iw = np.clip(np.minimum(a64[..., 2], b64[..., 2]) - np.maximum(a64[..., 0], b64[..., 0]), 0, None)
    ih = np.clip(np.minimum(a64[..., 3], b64[..., 3]) - np.maximum(a64[..., 1], b64[..., 1]), 0, None)
    inter = iw * ih
    union = _area(a64) + _area(b64) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _area(boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


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


def person_box(xy: npt.NDArray[np.float32], scores: npt.NDArray[np.float32],
               image_size: tuple[int, int], margin: float = 1.4, keypoint_threshold: float = 0.2,
               score: float | None = None) -> Box | None:
    """The square crop box of one pose: its keypoints' box grown by ``margin``, squared
    and clipped to the frame (``image_size`` = (height, width)); None when fewer than two
    keypoints score at least the threshold or the box is too small to be a person."""
    b = pose_box(xy, scores, keypoint_threshold, score)
    if b is None:
        return None
    b = b.scaled(margin).squared().clipped(*image_size)
    return b if b.width >= MIN_CROP_SIDE else None


def person_boxes(poses: Poses, image_size: tuple[int, int], margin: float = 1.4,
                 keypoint_threshold: float = 0.2) -> list[Box]:
    """``person_box`` of each pose that gives one, scored by its pose score."""
    boxes = (person_box(poses.xy[i], poses.scores[i], image_size, margin, keypoint_threshold,
                        float(poses.pose_scores[i])) for i in range(len(poses)))
    return [b for b in boxes if b is not None]


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


def _check(image: npt.NDArray[np.uint8], box: Box) -> None:
    check_rgb(image)
    if not (box.width > 0 and box.height > 0 and np.isfinite(box.as_array()).all()):
        raise ModelError(f"cannot crop an empty or undefined box {box}")


def crop_resize(image: npt.NDArray[np.uint8], box: Box, size: tuple[int, int],
                interpolation: Interpolation = "bilinear") -> tuple[npt.NDArray[np.uint8], Transform]:
    """``box`` of ``image`` resized to ``size`` = (height, width) in one resampling, and
    the Transform from the source frame to that crop's pixels."""
    _check(image, box)
    t = Transform.for_crop(box.x0, box.y0, box.x1, box.y1, size, image.shape[:2])
    return warp(image, t, interpolation), t


def crop(image: npt.NDArray[np.uint8], box: Box) -> tuple[npt.NDArray[np.uint8], Transform]:
    """``box`` of ``image`` at the source resolution (corners rounded to whole pixels,
    zero-padded past the edges), and the Transform from the frame to the crop."""
    _check(image, box)
    x0, y0 = int(round(box.x0)), int(round(box.y0))
    x1, y1 = max(int(round(box.x1)), x0 + 1), max(int(round(box.y1)), y0 + 1)
    t = Transform.for_crop(x0, y0, x1, y1, (y1 - y0, x1 - x0), image.shape[:2])
    return paste(image, (y1 - y0, x1 - x0), (-x0, -y0)), t


def to_source(poses: Poses, transform: Transform) -> Poses:
    """``poses`` found in a crop's pixels, in the source frame's pixels."""
    return Poses(transform.to_source(poses.xy), poses.scores, poses.pose_scores, poses.schema,
                 poses.track_ids)
