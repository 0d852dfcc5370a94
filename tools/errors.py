"""Errors of the dev-PC tools, on top of edgepose's hierarchy.

Every one is an ``EdgePoseError``, so ``run_cli`` prints it as one line and exits 2.
"""

from __future__ import annotations

from edgepose.core.errors import EdgePoseError, ModelError


class ToolError(EdgePoseError):
    """A dev-PC tool cannot do what was asked (bad flag, missing program, bad output path)."""


class DataError(ToolError):
    """A dataset, annotation file, image folder or representative set that cannot be used."""


class ConversionError(ToolError, ModelError):
    """TensorFlow Lite conversion or quantization failed (e.g. a non-quantizable op)."""


class CompilerNotFoundError(ToolError):
    """``edgetpu_compiler`` is not installed or not found."""
