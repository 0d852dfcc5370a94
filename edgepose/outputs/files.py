"""What the file outputs (JSON Lines, recordings, snapshots) share: the checks that a
path can be written, without creating anything."""

from __future__ import annotations

import os
from pathlib import Path

from edgepose.core.errors import ConfigError


def check_writable_file(path: Path, what: str, suffixes: tuple[str, ...] = ()) -> None:
    """ConfigError unless ``path`` could be created or replaced (folder exists and is
    writable, not a directory, suffix one of ``suffixes``); touches nothing."""
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{what} {path}: expected a {' or '.join(suffixes)} file name")
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; pass a file name")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"{what} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: folder {folder} is not writable; pass a writable folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{what} {path} exists and is read-only; pass another file name")
