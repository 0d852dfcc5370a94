"""``ServeOutput``: the ``--serve [HOST:]PORT`` live view, fed like any non-blocking output.

``write()`` hands the newest result to the output's thread (``BackgroundOutput``), which
serialises the record once, encodes the picture as JPEG only while someone watches (the
page or the MJPEG stream), scaled down to ``picture_width`` (the skeleton is drawn in the
browser from source-pixel keypoints, so it stays sharp at any size), and hands it to the
aiohttp server (``edgepose.outputs.serve.server``) running on its own thread and event loop.

Loopback (127.0.0.0/8, ::1, localhost) is served without a token unless one is given;
any other address needs one: ``token="auto"`` generates one and prints the URL with it.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import time
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError
from edgepose.core.imageio import encode_image
from edgepose.outputs.background import NICENESS, BackgroundOutput, import_net
from edgepose.outputs.base import FrameResult
from edgepose.outputs.records import record_text

log = logging.getLogger(__name__)

PICTURE_WIDTH = 960
QUALITY = 80
AUTO_TOKEN = "auto"
MIN_TOKEN_LENGTH = 16


def parse_bind(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port), loopback when no host is given."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"serve {text!r}: expected [HOST:]PORT with a port 1..65535, e.g. 8080 "
                          "or 0.0.0.0:8080")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str | None) -> None:
    """``ConfigError`` unless ``token`` is absent (None or ""), ``auto``, or a real secret:
    at least ``MIN_TOKEN_LENGTH`` printable ASCII characters without spaces (it travels in
    URLs and headers). A blank or short token is no token. The message never shows it."""
    if not token or token == AUTO_TOKEN:
        return
    fix = (f"give at least {MIN_TOKEN_LENGTH} characters without spaces, or --serve-token auto "
           "to have one made")
    if not token.strip():
        raise ConfigError(f"--serve-token is blank ({len(token)} space(s)): a blank token is no "
                          f"token; {fix}")
    if any(not (33 <= ord(c) <= 126) for c in token):
        raise ConfigError("--serve-token holds spaces, control or non-ASCII characters, which do "
                          f"not travel in URLs and headers; {fix}")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"--serve-token is {len(token)} characters, too short to withstand "
                          f"guessing; {fix}")


def check_bind(bind: str, token: str | None) -> tuple[str, int]:
    """(host, port) of ``bind``; ``ConfigError`` for a bind beyond loopback without a token,
    or a token that is blank or too short (``check_token``)."""
    check_token(token)
    host, port = parse_bind(bind)
    if not is_loopback(host) and not token:
        raise ConfigError(f"--serve {bind}: binding beyond loopback needs a token; pass "
                          "--serve-token TOKEN (or --serve-token auto to have one made and "
                          "printed), or serve on 127.0.0.1")
    return host, port


def encode_jpeg(image: npt.NDArray[np.uint8], quality: int = QUALITY, max_width: int = 0) -> bytes:
    """``image`` (RGB) as JPEG, first shrunk by a whole factor to at most ``max_width``."""
    return encode_image(image, "jpg", quality, max_width)


def snapshot_jpeg(result: FrameResult, raw: bool, keypoint_threshold: float) -> bytes:
    """The full-size frame as JPEG, with the skeleton drawn unless ``raw``."""
    image = result.image
    if not raw:
        from edgepose.render import annotate

        image = annotate(image, result.poses, keypoint_threshold)
    return encode_jpeg(image)


class ServeOutput(BackgroundOutput):
    """The live view and the pose streams on ``[HOST:]PORT`` (module docstring)."""

    kind = "serve"
    niceness = NICENESS  # JPEGs and 20 viewers must not take the pipeline's CPU

    def __init__(self, bind: str = "8080", *, token: str | None = None,
                 keypoint_threshold: float = 0.3, picture_width: int = PICTURE_WIDTH,
                 quality: int = QUALITY, **_: Any) -> None:
        self.bind = bind
        self.host, self.port = parse_bind(bind)
        super().__init__(f"serve http://{self._url_host()}:{self.port}/")
        self.generated_token = token == AUTO_TOKEN
        self.token = secrets.token_urlsafe(16) if self.generated_token else (token or None)
        self.keypoint_threshold = keypoint_threshold
        self.picture_width, self.quality = picture_width, quality
        self.frames = 0                        # results handed to write()
        self._arrivals: deque[float] = deque(maxlen=60)
        self._server: Any = None

    def _url_host(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        return f"[{host}]" if ":" in host else host

    @property
    def url(self) -> str:
        """The page's URL, with the token when there is one."""
        base = f"http://{self._url_host()}:{self.port}/"
        return base + (f"?token={self.token}" if self.token else "")

    def check(self) -> None:
        check_bind(self.bind, self.token)
        import_net("aiohttp", "aiohttp", "--serve")

    def open(self) -> None:
        if self._server is not None:
            return
        self.check()
        from edgepose.outputs.serve.server import LiveServer, meta_document

        self._server = LiveServer(self.host, self.port, token=self.token,
                                  meta=meta_document(self.keypoint_threshold),
                                  stats=self._stats, snapshot=self._snapshot)
        self._server.start()
        if self.generated_token:
            log.warning("live view on %s (token generated for this run)", self.url)
        else:
            log.info("live view on %s%s", self.url.split("?")[0],
                     " (add ?token=YOUR_TOKEN)" if self.token else "")
        super().open()

    def write(self, result: FrameResult) -> None:
        self.frames += 1
        self._arrivals.append(time.monotonic())
        super().write(result)

    def close(self) -> None:
        super().close()
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def viewers(self) -> int:
        return self._server.viewers if self._server is not None else 0

    def fps(self) -> float:
        times = list(self._arrivals)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    # -- on the output's thread -----------------------------------------------------

    def _send(self, result: FrameResult) -> None:
        from edgepose.outputs.serve.server import Published, envelope

        server = self._server
        if server is None:
            return
        jpeg = None
        if server.viewers:
            jpeg = encode_jpeg(result.image, self.quality, self.picture_width)
        text = record_text(result.record)
        server.publish(Published(result.record, text, envelope(text, self.fps(), jpeg is not None),
                                 jpeg, result, time.monotonic()))

    # -- on the server's loop (or its executor) ------------------------------------

    def _stats(self) -> dict[str, Any]:
        return {"frames": self.frames, "fps": round(self.fps(), 2), "dropped": self.dropped}

    def _snapshot(self, item: Any, raw: bool) -> bytes:
        return snapshot_jpeg(item.result, raw, self.keypoint_threshold)
