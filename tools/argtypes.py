"""argparse value types shared by the ``edgepose-tools`` subcommands.

A bad value is an argparse error: one line naming the flag, exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes, steps)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (1, 2, 3, ...)")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rate, sigma, widths)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def model_file(text: str | Path) -> Path:
    """A .tflite path, or the local file of a registered model name (``movenet-lightning``),
    as ``evaluate`` takes them; an unknown name is a one-line ModelError listing the known ones."""
    from edgepose.models.registry import is_model_path, resolve_model

    if is_model_path(text):
        return Path(text)
    return resolve_model(str(text)).path
