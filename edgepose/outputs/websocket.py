"""``ws://`` / ``wss://`` output: a WebSocket client that sends each frame's record as
one JSON text message (the same JSON as a line of the JSON Lines output) to a server,
e.g. a game, a Unity or Node app, or a logger on another machine.

Runs on its own thread (``BackgroundOutput``): newest record wins, drops are counted, a
refused or lost connection is retried with backoff. Uses the ``websockets`` library's
synchronous client, imported only here (extra ``net``).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from edgepose.outputs.background import BackgroundOutput, import_net, parse_url
from edgepose.outputs.base import FrameResult
from edgepose.outputs.records import record_text

FORM = "ws://HOST[:PORT][/PATH] or wss://HOST[:PORT][/PATH]"
OPEN_TIMEOUT = 3.0


class QuietPeerLog(logging.LoggerAdapter):
    """The logger handed to the websockets library: everything it says about a peer
    (its "unexpected internal error" tracebacks on garbage or a socket closed under it
    included) goes to the debug log; what the run reports is our one line per outage."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.getLogger(name), {})

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.log(logging.DEBUG, msg, *args, **kwargs)


def import_websockets_client() -> Any:
    return import_net("websockets.sync.client", "websockets", "ws:// outputs")


class WebSocketOutput(BackgroundOutput):
    """Sends each record as JSON text to the WebSocket server at ``spec``."""

    kind = "ws"

    def __init__(self, spec: str, *, open_timeout: float = OPEN_TIMEOUT, **_: Any) -> None:
        super().__init__(spec)
        self.open_timeout = open_timeout
        url = parse_url(spec, ("ws", "wss"), FORM, default_port=80)
        assert url.hostname is not None
        self._address = (url.hostname, url.port or (443 if url.scheme.lower() == "wss" else 80))
        self._ws: Any = None
        self._sock: socket.socket | None = None

    def check(self) -> None:
        import_websockets_client()

    def _connect(self) -> None:
        client = import_websockets_client()
        # our own socket, so that _abort() can also end a handshake the peer never answers
        sock = self._sock = socket.create_connection(self._address, timeout=self.open_timeout)
        try:
            # compression off: records are small and the Pi's CPU is better spent on
            # poses; proxy off: a stream to the LAN never goes through an HTTP proxy.
            connection = client.connect(self.spec, sock=sock, open_timeout=self.open_timeout,
                                        close_timeout=0.3, compression=None, proxy=None, max_queue=4,
                                        logger=QuietPeerLog("edgepose.ws.peer"))
        except BaseException:
            sock.close()  # websockets closes it too when the handshake fails; twice is harmless
            raise
        # entered as its library wants (websockets >= 17.1); left in _disconnect/_abort
        self._ws = connection.__enter__()

    def _send(self, result: FrameResult) -> None:
        self._ws.send(record_text(result.record))

    def _disconnect(self) -> None:
        ws, self._ws = self._ws, None
        self._sock = None
        if ws is not None:
            ws.close()

    def _abort(self) -> None:
        ws, self._ws = self._ws, None
        sock, self._sock = self._sock, None
        if sock is not None:
            try:  # wakes a send() or handshake blocked on a peer that stopped reading
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if ws is not None:
            ws.close_socket()
        # Mid-handshake (no connection yet) the socket is left to _connect, which closes
        # it once the handshake has failed: closing it here, right after the shutdown,
        # can remove it from websockets' selector before its reader wakes, and the
        # handshake then waits out its whole timeout (seen: 3 runs in 4).
