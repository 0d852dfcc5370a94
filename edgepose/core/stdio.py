"""Standard-stream helpers shared by the CLIs and the stdout output."""

from __future__ import annotations

import os
import sys


def silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush cannot fail again (after a
    reader went away or the disk behind a redirect filled up)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced (pytest capture)
        pass
