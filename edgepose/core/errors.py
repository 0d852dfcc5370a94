"""The small exception hierarchy of edgepose.

Every error a user can cause (a bad path, a wrong model, a missing device) is an
``EdgePoseError``; the CLIs print its message as one line and exit with code 2.
Messages name the thing, its value, what was expected and the fix.
"""

from __future__ import annotations

import errno
import os
import re

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: anything a terminal
# or a journal could show as a new line (or use to rewrite the one shown)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``, ...), so a
    message stays one line whatever the file names in it contain."""
    return _CONTROL.sub(_escape, text)


class EdgePoseError(Exception):
    """Base class: a problem the user can act on."""


class ModelError(EdgePoseError):
    """A model file, manifest or model output that cannot be used."""


class DeviceError(EdgePoseError):
    """The Edge TPU, its runtime library or another device is missing or unusable."""


class SourceError(EdgePoseError):
    """A camera, video, image or stream that cannot be opened or read."""


class ConfigError(EdgePoseError):
    """A bad configuration value, command-line flag or config file."""


class FetchError(ModelError):
    """A model download failed or did not match its checksum."""


class RenderError(EdgePoseError):
    """The display or renderer could not be set up."""


class OutputError(EdgePoseError):
    """An output (file, recording, network stream) failed while the run was going:
    a full disk, a vanished folder. The run goes on without that output and exits 1."""


def describe_error(err: BaseException) -> str:
    """A short one-line reason for a log or error line: ``connection refused``, ``timed
    out``, ``No space left on device (ENOSPC)`` for an OSError, else the first line of its
    message (or its type's name)."""
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError):
        return f"timed out{': ' + str(err) if str(err) else ''}"
    if isinstance(err, OSError) and err.errno and err.errno > 0:
        name = errno.errorcode.get(err.errno, str(err.errno))
        return f"{err.strerror or os.strerror(err.errno)} ({name})"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
