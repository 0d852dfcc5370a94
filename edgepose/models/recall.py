"""A failed download remembered for a while, so that a pipeline with a ``[fallback]``
does not wait on the network at every start.

The default pipeline downloads MoveNet Thunder on first use and runs Lightning when it
cannot. Offline, "cannot" is quick when DNS fails at once, but a network that silently
drops packets holds each attempt until the socket timeout. So a landmark that has a
fallback is fetched with a shorter timeout (``FALLBACK_TIMEOUT_S``), and a failure is
written down in the cache (``<cache>/.unreachable/<name>``, its message); for
``RETRY_AFTER_S`` after that, starts go straight to the fallback without a network
attempt. ``edgepose models fetch NAME`` always tries, and any successful fetch of the
model forgets the failure (``registry.fetch_model``).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from edgepose.core.errors import FetchError
from edgepose.models.registry import fetch_model, find_model_file, get_manifest, unreachable_mark

FALLBACK_TIMEOUT_S = 10.0  # per network read, for a landmark that has a fallback (30 s otherwise)
RETRY_AFTER_S = 3600.0     # a remembered failure is not retried for this long
_MAX_NOTE = 1000           # bytes of the remembered message read back


def _minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))} min"


def fetch_or_recall(name: str, *, timeout: float | None = None, retry_after: float | None = None) -> Path:
    """The model's local file: found on disk, else downloaded (``timeout`` per read,
    default ``FALLBACK_TIMEOUT_S``).

    ``FetchError`` when the download fails, and for ``retry_after`` seconds (default
    ``RETRY_AFTER_S``) after a failure without trying again (its message says when it
    failed and when the next attempt is). A clock set back past the failure counts as
    stale: the download is tried.
    """
    timeout = FALLBACK_TIMEOUT_S if timeout is None else timeout
    existing = find_model_file(get_manifest(name))
    if existing is not None:
        return existing
    note = remembered_failure(name, retry_after)
    if note is not None:
        raise FetchError(note)
    try:
        return fetch_model(name, timeout=timeout)
    except FetchError as err:
        _remember(unreachable_mark(name), str(err))
        raise


def remembered_failure(name: str, retry_after: float | None = None) -> str | None:
    """The remembered failure of ``name``'s download with when it happened and when it is
    tried again, while it holds (``retry_after``, default ``RETRY_AFTER_S``); else None."""
    retry_after = RETRY_AFTER_S if retry_after is None else retry_after
    mark = unreachable_mark(name)
    try:
        age = time.time() - mark.stat().st_mtime
        with open(mark, "rb") as f:
            note = f.read(_MAX_NOTE).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not note or not 0 <= age < retry_after:
        return None
    return (f"{note} ({_minutes(age)} ago; next try in {_minutes(retry_after - age)} "
            f"or by `edgepose models fetch {name}`)")


def _remember(mark: Path, note: str) -> None:
    """Write the failure down (atomically); a cache that cannot be written just forgets."""
    tmp = mark.with_name(f".{mark.name}.{os.getpid()}.tmp")
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(" ".join(note.split())[:_MAX_NOTE] + "\n", encoding="utf-8")
        os.replace(tmp, mark)
    except OSError:
        with contextlib.suppress(OSError):  # not there, or its folder could not be made
            tmp.unlink()
