"""The small exception hierarchy of edgepose.

Every error a user can cause (a bad path, a wrong model, a missing device) is an
``EdgePoseError``; the CLIs print its message as one line and exit with code 2.
Messages name the thing, its value, what was expected and the fix.
"""

from __future__ import annotations


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
