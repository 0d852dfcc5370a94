"""The per-person sample record both dataset readers return, and the data error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tools.errors import DataError

__all__ = ["PIXEL_STD", "DataError", "PersonSample", "check_images", "load_json"]

PIXEL_STD = 200.0  # MPII convention: person height = scale * 200 px


@dataclass(frozen=True)
class PersonSample:
    """One annotated person: joints in image pixels, visibility, and the crop centre/scale.

    ``scale`` follows MPII: the person box is ``scale * 200`` pixels tall (square).
    """

    image_path: str
    joints: npt.NDArray[np.float32]  # (K, 2) x, y in image pixels
    visibility: npt.NDArray[np.float32]  # (K,) 1 visible/labelled, 0 not
    center: npt.NDArray[np.float32]  # (2,) x, y in image pixels
    scale: float
    schema: str

    @property
    def num_joints(self) -> int:
        return int(self.joints.shape[0])


def load_json(path: Path, what: str) -> Any:
    """Read an annotation file; missing or broken files raise one-line DataErrors."""
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder; pass the annotation JSON file itself")
    if not path.is_file():
        raise DataError(f"{what} {path} not found; pass the path to the dataset's annotation JSON")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {path} is not valid JSON ({exc}); re-download the annotations") from None


def check_images(samples: Sequence[PersonSample], image_dir: Path) -> None:
    """Fail early (before any TFRecord is written) when annotated images are missing."""
    if not image_dir.is_dir():
        raise DataError(f"image folder {image_dir} not found; pass --images with the dataset's image folder")
    missing = sorted({s.image_path for s in samples if not Path(s.image_path).is_file()})
    if missing:
        raise DataError(
            f"{len(missing)} annotated image(s) missing from {image_dir}, e.g. {Path(missing[0]).name}; "
            "point --images at the folder that holds them"
        )
