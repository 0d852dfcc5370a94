"""TOML for configs and manifests: read a file with one-line errors that name it, and
write the values edgepose writes (the standard library only reads TOML)."""

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


def toml_value(v: Any) -> str:
    """``v`` (bool, number, string, or a list/tuple of them) as a TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
