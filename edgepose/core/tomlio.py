"""TOML for configs and manifests: read a file with one-line errors that name it, and
write the values edgepose writes (the standard library only reads TOML)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from edgepose.core.errors import EdgePoseError
from edgepose.core.limits import MAX_TOML_BYTES, read_bounded

BOM = b"\xef\xbb\xbf"


def read_toml(path: Path, what: str, error: type[EdgePoseError], missing_hint: str = "") -> dict[str, Any]:
    """The parsed file; ``error`` naming ``what`` and ``path`` when it is missing, not a
    regular file of at most ``MAX_TOML_BYTES``, unreadable or not TOML. A UTF-8
    byte-order mark at the start (Windows Notepad writes one) is accepted."""
    if not os.path.exists(path):
        raise error(f"{what} {path} not found{missing_hint}")
    data = read_bounded(path, what, error, max_bytes=MAX_TOML_BYTES, fix="pass a TOML file")
    data = data.removeprefix(BOM)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise error(f"{what} {path} is not valid TOML: it is UTF-16 text (it starts with a "
                    "UTF-16 byte-order mark); save it as UTF-8")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise error(f"{what} {path} is not valid TOML (not UTF-8 text: byte 0x{data[err.start]:02x} "
                    f"at offset {err.start}): save it as UTF-8") from None
    except tomllib.TOMLDecodeError as err:
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
