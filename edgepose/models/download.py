"""One bounded download into a file: verified by sha256 (or, where upstream publishes
none, by its git blob id: SHA-1 of ``b"blob <size>\\0" + content``), never longer than expected,
never slower than a minimum rate, never left half-written by a signal (the caller
removes its temporary file in a ``finally``; ``edgepose.cli.common`` turns SIGTERM and
SIGHUP into an exception so that ``finally`` runs).

Bounds, so that a mirror that misbehaves cannot fill the cache's disk or hold a fetch
forever:

- **size**: the manifest's ``size`` (bytes) when it has one, else the server's
  ``Content-Length``, else ``MAX_BYTES``; one byte more and the download stops. A server
  announcing a length other than the manifest's is refused before anything is written.
- **time**: each read waits at most ``timeout`` seconds (the socket timeout), and the
  whole download must average ``MIN_RATE`` after its first ``timeout`` seconds: it is
  stopped once ``elapsed > timeout + max(expected, received) / MIN_RATE`` (a 3 MB model:
  30 s + 3 min). A mirror trickling a byte every few seconds trips this, not the per-read
  timeout.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from edgepose.core.errors import FetchError

CHUNK = 1 << 16
MIN_RATE = 16 * 1024      # bytes/s, on average, after the first ``timeout`` seconds
MAX_BYTES = 256 * 2**20   # when neither the manifest nor the server says how much


def _rate(n: float) -> str:
    return f"{n / 1024:g} KiB/s"


def git_blob_id(path: Path) -> str:
    """The git blob id of a file (what ``git hash-object`` prints): SHA-1 of
    ``b"blob <size>\\0"`` followed by the content."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)  # noqa: S324 - git's id, not security
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download(name: str, src: str, sha256: str, tmp: Path, timeout: float,
             progress: Callable[[int, int], None] | None = None, *, size: int = 0,
             git_blob: str = "") -> None:
    """Write ``src`` into ``tmp`` within the bounds above; ``FetchError`` (one line) on a
    short, long, slow or corrupted transfer. ``size``: the expected bytes (0: unknown).
    Verified by ``sha256`` when given, by ``git_blob`` (the git blob id) otherwise."""
    if not sha256 and not git_blob:
        raise FetchError(f"model {name!r} has neither sha256 nor git_blob; refusing an unverified download")
    try:
        h = hashlib.sha256()
        got = 0
        start = time.monotonic()
        with open(tmp, "wb") as out, urllib.request.urlopen(src, timeout=timeout) as resp:
            announced = int(resp.headers.get("Content-Length") or 0)
            if size and announced and announced != size:
                raise FetchError(f"download of {name!r}: {src} is {announced} bytes (Content-Length), "
                                 f"the manifest expects {size}; nothing was kept (wrong URL or another "
                                 "version of the file?)")
            limit = size or announced or MAX_BYTES
            expected = size or announced
            read = getattr(resp, "read1", resp.read)  # what has arrived, not a full chunk
            while chunk := read(min(CHUNK, limit + 1 - got)):
                got += len(chunk)
                if got > limit:
                    raise FetchError(f"download of {name!r} from {src} sent more than the {limit} bytes "
                                     f"expected; stopped there and kept nothing (wrong URL or a broken "
                                     "mirror?)")
                out.write(chunk)
                h.update(chunk)
                if progress:
                    progress(got, expected)
                elapsed = time.monotonic() - start
                if elapsed > timeout + max(expected, got) / MIN_RATE:
                    raise FetchError(f"download of {name!r} from {src} is too slow: {got} of "
                                     f"{expected or '?'} bytes in {elapsed:.0f} s (at least "
                                     f"{_rate(MIN_RATE)} on average is needed after the first "
                                     f"{timeout:g} s); stopped, nothing kept; try again or use "
                                     "--url with a nearer mirror")
            if expected and got != expected:
                raise FetchError(f"download of {name!r} from {src} stopped at {got} of {expected} bytes; "
                                 "try again")
        if git_blob and not sha256:
            blob = git_blob_id(tmp)
            if blob != git_blob:
                raise FetchError(
                    f"download of {name!r} from {src} has git blob id {blob[:12]}…, expected "
                    f"{git_blob[:12]}…; the file was discarded (wrong URL or a corrupted mirror?)")
        elif h.hexdigest() != sha256:
            raise FetchError(
                f"download of {name!r} from {src} has sha256 {h.hexdigest()[:12]}…, expected "
                f"{sha256[:12]}…; the file was discarded (wrong URL or a corrupted mirror?)"
            )
    except FetchError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"could not download {name!r} from {src}: {reason}; check the network or use --url") from None
    except Exception as exc:  # http.client.IncompleteRead and friends
        raise FetchError(f"could not download {name!r} from {src}: {type(exc).__name__}: {exc}; try again") from None
