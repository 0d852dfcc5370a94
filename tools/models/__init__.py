"""Keras 3 pose models whose every layer maps to the Edge TPU (static batch 1 for export)."""

from __future__ import annotations

from typing import Any

MODEL_KINDS = ("simple_baselines", "hourglass")


def build_model(kind: str, **kwargs: Any) -> Any:
    """Build a model by kind name; ``kwargs`` go to that kind's builder."""
    from edgepose.core.errors import ConfigError

    if kind == "simple_baselines":
        from tools.models.simple_baselines import build_simple_baselines

        return build_simple_baselines(**kwargs)
    if kind == "hourglass":
        from tools.models.hourglass import build_hourglass

        return build_hourglass(**kwargs)
    raise ConfigError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
