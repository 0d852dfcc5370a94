"""Read MPII annotations in the tutorial's JSON layout into PersonSamples.

Each record: ``joints`` [16 x [x, y]], ``joints_vis`` [16], ``center`` [x, y],
``scale`` (person height = scale * 200 px) and ``image`` (file name).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepose.core.schemas import MPII16
from tools.data.samples import DataError, PersonSample, check_images, load_json

NUM_JOINTS = MPII16.num_keypoints
MAX_SCALE = 100.0  # a 20,000 px tall person: beyond it a scale is a broken record (inf, 1e30)


def read_mpii(annotations: str | Path, images: str | Path | None = None) -> list[PersonSample]:
    """One sample per record; ``images`` defaults to the annotation file's folder."""
    path = Path(annotations)
    records = load_json(path, "MPII annotation file")
    if not isinstance(records, list) or not records:
        raise DataError(f"MPII annotation file {path}: expected a non-empty JSON list of people")
    image_dir = Path(images) if images is not None else path.parent
    samples = [_sample(r, i, path, image_dir) for i, r in enumerate(records)]
    check_images(samples, image_dir)
    return samples


def _sample(rec: object, i: int, path: Path, image_dir: Path) -> PersonSample:
    where = f"MPII annotation file {path}, record {i}"
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
    missing = [k for k in ("joints", "joints_vis", "center", "scale", "image") if k not in rec]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}; expected the tutorial's MPII layout")
    try:
        joints = np.asarray(rec["joints"], dtype=np.float32)
        vis = np.asarray(rec["joints_vis"], dtype=np.float32)
        center = np.asarray(rec["center"], dtype=np.float32)
        scale = float(rec["scale"])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: non-numeric joints/center/scale ({exc})") from None
    if joints.shape != (NUM_JOINTS, 2) or vis.shape != (NUM_JOINTS,):
        raise DataError(
            f"{where}: {joints.shape[0] if joints.ndim else 0} joints / {vis.size} visibility flags, "
            f"expected {NUM_JOINTS} (MPII order); use the COCO reader for 17-keypoint data"
        )
    if center.shape != (2,) or not scale > 0:
        raise DataError(f"{where}: center {rec['center']!r} / scale {rec['scale']!r}; expected [x, y] and scale > 0")
    for name, value in (("joints", joints), ("joints_vis", vis), ("center", center)):
        if not np.isfinite(value).all():
            raise DataError(f"{where}: {name} holds NaN or infinity; fix or drop the record "
                            "(an unlabelled joint is written with joints_vis 0, not NaN)")
    if not scale <= MAX_SCALE:
        raise DataError(f"{where}: scale {scale!r} is not a person's size (height = scale x 200 px; "
                        f"expected 0 < scale <= {MAX_SCALE:g}); fix or drop the record")
    return PersonSample(
        image_path=str(image_dir / str(rec["image"])),
        joints=joints,
        visibility=(vis > 0).astype(np.float32),
        center=center,
        scale=scale,
        schema=MPII16.name,
    )
