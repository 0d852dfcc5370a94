"""Read COCO keypoints JSON into PersonSamples (centre/scale derived from the bbox)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepose.core.schemas import COCO17
from tools.data.samples import PIXEL_STD, DataError, PersonSample, check_images, load_json

NUM_JOINTS = COCO17.num_keypoints


def read_coco(
    annotations: str | Path, images: str | Path | None = None, min_keypoints: int = 1
) -> list[PersonSample]:
    """One sample per non-crowd person with at least ``min_keypoints`` labelled joints.

    ``images`` defaults to ``images/`` next to the annotation file. v = 0 joints are
    invisible; v = 1 (occluded but labelled) and v = 2 are visible targets.
    """
    path = Path(annotations)
    data = load_json(path, "COCO annotation file")
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise DataError(f"COCO annotation file {path}: expected an object with 'images' and 'annotations'")
    image_dir = Path(images) if images is not None else path.parent / "images"
    files = {img["id"]: img["file_name"] for img in data["images"]}
    samples = []
    for i, ann in enumerate(data["annotations"]):
        if ann.get("iscrowd", 0) or "keypoints" not in ann:
            continue
        kp = np.asarray(ann["keypoints"], dtype=np.float32)
        if kp.size != NUM_JOINTS * 3:
            raise DataError(
                f"COCO annotation file {path}, annotation {i} (id {ann.get('id')}): {kp.size // 3} keypoints, "
                f"expected {NUM_JOINTS} (COCO-17); use the MPII reader for 16-joint data"
            )
        kp = kp.reshape(NUM_JOINTS, 3)
        bbox = ann.get("bbox")
        if not np.isfinite(kp).all() or (isinstance(bbox, (list, tuple)) and
                                         not np.isfinite(np.asarray(bbox, np.float64)).all()):
            raise DataError(f"COCO annotation file {path}, annotation {i} (id {ann.get('id')}): keypoints "
                            "or bbox hold NaN or infinity; fix or drop the annotation")
        vis = (kp[:, 2] > 0).astype(np.float32)
        if vis.sum() < min_keypoints:
            continue
        if ann["image_id"] not in files:
            raise DataError(f"COCO annotation file {path}, annotation {i}: image_id {ann['image_id']} not in 'images'")
        samples.append(PersonSample(
            image_path=str(image_dir / files[ann["image_id"]]),
            joints=kp[:, :2].copy(),
            visibility=vis,
            center=_center(ann.get("bbox"), kp[:, :2], vis),
            scale=_scale(ann.get("bbox"), kp[:, :2], vis),
            schema=COCO17.name,
        ))
    if not samples:
        raise DataError(f"COCO annotation file {path}: no person with >= {min_keypoints} labelled keypoints")
    check_images(samples, image_dir)
    return samples


def _box(bbox: object, xy: np.ndarray, vis: np.ndarray) -> tuple[float, float, float, float]:
    """The annotation's bbox (x, y, w, h), or the labelled keypoints' extent without one."""
    if isinstance(bbox, (list, tuple)) and len(bbox) == 4 and bbox[2] > 0 and bbox[3] > 0:
        return tuple(float(v) for v in bbox)  # type: ignore[return-value]
    pts = xy[vis > 0]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return float(lo[0]), float(lo[1]), float(max(hi[0] - lo[0], 1.0)), float(max(hi[1] - lo[1], 1.0))


def _center(bbox: object, xy: np.ndarray, vis: np.ndarray) -> np.ndarray:
    x, y, w, h = _box(bbox, xy, vis)
    return np.array([x + w / 2, y + h / 2], dtype=np.float32)


def _scale(bbox: object, xy: np.ndarray, vis: np.ndarray) -> float:
    """MPII-style scale: the square person box is the bbox's longer side."""
    _, _, w, h = _box(bbox, xy, vis)
    return max(w, h) / PIXEL_STD
