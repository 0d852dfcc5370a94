"""edgepose: real-time human pose estimation on a Raspberry Pi with a Coral Edge TPU.

Nothing here touches hardware or heavy libraries at import time.
"""

from __future__ import annotations

from edgepose.core.errors import (
    ConfigError,
    DeviceError,
    EdgePoseError,
    FetchError,
    ModelError,
    OutputError,
    RenderError,
    SourceError,
)
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.core.schemas import COCO17, MPII16, Schema, get_schema

__version__ = "0.1.0"

__all__ = [
    "COCO17", "MPII16", "ConfigError", "DeviceError", "EdgePoseError", "FetchError",
    "ModelError", "OutputError", "Poses", "RenderError", "Schema", "SourceError", "Transform",
    "get_schema", "__version__",
]
