"""Read a TOML file with one-line errors that name the file, for configs and manifests."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from edgepose.errors import EdgePoseError
from edgepose.limits import MAX_TOML_BYTES, read_bounded

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
