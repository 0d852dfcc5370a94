"""Helpers shared by the benchmark scripts: where ../shared is, reading images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPOSE_SHARED", REPO.parent / "shared")).resolve()


def require_shared() -> Path:
    if not (SHARED / "models").is_dir():
        sys.exit(f"{SHARED} not found: set EDGEPOSE_SHARED to the shared data folder")
    os.environ.setdefault("EDGEPOSE_MODEL_PATH", str(SHARED / "models"))
    return SHARED


def load_rgb(path: Path) -> np.ndarray:
    from edgepose.core.imageio import read_image

    return read_image(path)


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3
