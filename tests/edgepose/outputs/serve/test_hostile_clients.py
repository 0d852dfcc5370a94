"""`--serve` against hostile clients on 127.0.0.1: huge headers, thousands of headers,
unknown methods, garbage request lines and a slow client get a 400 (or are simply
outlasted) while other clients are served, and none of it reaches the log above DEBUG
or prints a traceback. Blank and short tokens are refused before anything listens."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from edgepose.core.errors import ConfigError
from edgepose.outputs.serve import ServeOutput
from tests.edgepose.outputs.helpers import free_port, real_results

pytest.importorskip("aiohttp", reason="aiohttp is not installed (extra net)")
TOKEN = "hostile-clients-test-token"


@pytest.fixture
def served() -> Iterator[ServeOutput]:
    out = ServeOutput(f"127.0.0.1:{free_port()}", token=TOKEN)
    out.check()
    out.open()
    for r in real_results(3):
        out.write(r)
    yield out
    out.close()


def raw(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` as is and return the status line of the answer ("" if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        try:
            c.sendall(data)
            answer = c.recv(4096)
        except OSError:  # the server may close while a huge request is still being sent
            return b""
    return answer.split(b"\r\n", 1)[0]


def healthz(port: int, token: str = TOKEN) -> bytes:
    return raw(port, f"GET /healthz?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


HOSTILE = {
    "a 200 KB header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    "5,000 headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n",
    "a 100 KB URL": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "an unknown method": b"FROB / HTTP/1.1\r\nHost: x\r\n\r\n",
    "a garbage request line": b"\x00\x01\x02\xff garbage\r\n\r\n",
    "a body too large": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 100_000,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_malformed_requests_are_refused_quietly(served: ServeOutput, name: str,
                                                caplog: pytest.LogCaptureFixture,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(5):  # a client repeating it does not flood the log either
        status = raw(served.port, HOSTILE[name])
        assert status == b"" or status.split(b" ")[1] in (b"400", b"401", b"405", b"413", b"431"), status
    assert healthz(served.port).startswith(b"HTTP/1.1 200")  # still serving
    loud = [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.INFO and
            (r.name.startswith("aiohttp") or r.name.startswith("edgepose.outputs.serve"))]
    assert loud == [], loud
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error handling request" not in err


def test_a_slow_client_does_not_hold_up_the_others(served: ServeOutput,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Ten clients dribbling a request line a byte every 0.1 s; a normal client is served
    meanwhile, in well under a second each time."""
    caplog.set_level(logging.INFO)
    stop = threading.Event()

    def slow() -> None:
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as c:
            for byte in b"GET /healthz?token=" + b"x" * 1000:
                if stop.is_set():
                    return
                try:
                    c.send(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.1)

    threads = [threading.Thread(target=slow, daemon=True) for _ in range(10)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        for _ in range(5):
            t0 = time.monotonic()
            assert healthz(served.port).startswith(b"HTTP/1.1 200")
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("token", ["%20%20%20", "", "wrong-token-of-enough-length"])
def test_a_wrong_or_blank_token_is_401(served: ServeOutput, token: str) -> None:
    assert healthz(served.port, token).startswith(b"HTTP/1.1 401")


@pytest.mark.parametrize("bind, token, match", [
    ("0.0.0.0:8080", "   ", r"is blank \(3 space\(s\)\): a blank token is no token"),
    ("127.0.0.1:8080", " ", "is blank"),
    ("0.0.0.0:8080", "abc12", "is 5 characters, too short"),
    ("0.0.0.0:8080", "fifteen-chars-x", "is 15 characters, too short"),
    ("0.0.0.0:8080", "has a space in the middle", "holds spaces, control or non-ASCII"),
    ("0.0.0.0:8080", "tøken-with-non-ascii-chars", "holds spaces, control or non-ASCII"),
    ("0.0.0.0:8080", "sixteen-chars-ok\x7f", "holds spaces, control or non-ASCII"),  # DEL
    ("0.0.0.0:8080", "sixteen-chars-ok\x1f", "holds spaces, control or non-ASCII"),
])
def test_blank_or_short_tokens_are_refused_before_listening(bind: str, token: str, match: str) -> None:
    out = ServeOutput(bind, token=token)
    with pytest.raises(ConfigError, match=match) as info:
        out.check()
    message = str(info.value)
    assert "\n" not in message and "at least 16 characters" in message
    assert token.strip() == "" or token not in message  # a secret is never echoed


def test_a_sixteen_character_token_and_auto_are_accepted() -> None:
    ServeOutput("0.0.0.0:8080", token="sixteen-chars-ok").check()
    ServeOutput("0.0.0.0:8080", token="auto").check()
    # the printable ASCII range from its first to its last character ("!" to "~")
    ServeOutput("0.0.0.0:8080", token="!" * 8 + "~" * 8).check()
