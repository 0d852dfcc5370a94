"""edgepose: real-time human pose estimation on a Raspberry Pi with a Coral Edge TPU.

Nothing here touches hardware or heavy libraries at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from edgepose.core.pose import Poses
    from edgepose.core.preprocess import Transform
    from edgepose.core.schemas import COCO17, MPII16, Schema, get_schema

# numpy-backed names are imported on first use, so that a CLI starts (and installs its
# signal handlers) before numpy is loaded.
_LAZY = {"Poses": "edgepose.core.pose", "Transform": "edgepose.core.preprocess", "COCO17": "edgepose.core.schemas",
         "MPII16": "edgepose.core.schemas", "Schema": "edgepose.core.schemas", "get_schema": "edgepose.core.schemas"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgepose' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "COCO17", "MPII16", "ConfigError", "DeviceError", "EdgePoseError", "FetchError",
    "ModelError", "OutputError", "Poses", "RenderError", "Schema", "SourceError", "Transform",
    "get_schema", "__version__",
]
