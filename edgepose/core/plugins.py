"""``"module:attribute"`` references imported on first use: how the plug-in registries
(outputs, pipeline kinds) name their built-ins without importing them at start-up."""

from __future__ import annotations

import importlib
from typing import Any


def load_reference(target: str) -> Any:
    """The object ``"package.module:name"`` names (its module imported now)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
