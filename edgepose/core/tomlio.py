"""Read a TOML file with one-line errors that name the file, for configs and manifests."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edgepose.core.errors import EdgePoseError


def read_toml(path: Path, what: str, error: type[EdgePoseError], missing_hint: str = "") -> dict[str, Any]:
    """The parsed file; ``error`` naming ``what`` and ``path`` when it is missing, unreadable
    or not TOML."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(f"{what} {path} not found{missing_hint}") from None
    except OSError as err:
        raise error(f"{what} {path} cannot be read ({err.strerror}): check it is a readable file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise error(f"{what} {path} is not valid TOML ({err}): fix the syntax") from None
