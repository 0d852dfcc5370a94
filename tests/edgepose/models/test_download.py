"""`models fetch` against mirrors that misbehave, served by a 127.0.0.1 HTTP server in a
thread: a trickle, an endless body, a body longer than the model, a wrong Content-Length,
and a fetch stopped by SIGTERM or SIGINT. Each ends in one line with nothing left in the
cache, and never more bytes written than the manifest's size."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepose.core.errors import FetchError
from edgepose.models.download import MIN_RATE
from edgepose.models.registry import cache_dir, fetch_model, list_manifests, write_manifest
from tests.conftest import REPO

DATA = hashlib.sha256(b"edgepose").digest() * 1024  # 32 KiB standing in for a model
SIZE = len(DATA)


class _Mirror(http.server.BaseHTTPRequestHandler):
    """/ok: the file; /trickle: a byte every 0.25 s; /endless: zeros forever, no length;
    /long: the file and 4 KiB more, no length; /liar: announces twice the size."""

    sent: dict[str, int]

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up: what it should do
            return False
        self.sent[self.path] = self.sent.get(self.path, 0) + len(data)
        return True

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        if self.path in ("/ok", "/trickle"):
            self.send_header("Content-Length", str(SIZE))
        elif self.path == "/liar":
            self.send_header("Content-Length", str(2 * SIZE))
        self.end_headers()
        if self.path == "/trickle":
            for i in range(SIZE):
                if not self._send(DATA[i:i + 1]):
                    return
                time.sleep(0.25)
        elif self.path == "/endless":
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self._send(b"\0" * 65536):
                pass
        elif self.path == "/long":
            self._send(DATA + b"\0" * 4096)
        else:
            self._send(DATA)


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, int]]]:
    """The server, and manifests m-ok / m-trickle / ... pointing at it (size and sha256 of
    DATA), with an empty cache."""
    sent: dict[str, int] = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Mirror,), {"sent": sent}))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    base = list_manifests()["movenet-lightning"].with_(sha256=hashlib.sha256(DATA).hexdigest(), size=SIZE,
                                                      file="m.tflite", edgetpu_twin="")
    for path in ("ok", "trickle", "endless", "long", "liar"):
        write_manifest(base.with_(name=f"m-{path}", url=f"{url}/{path}"), mdir / f"{path}.toml")
    write_manifest(base.with_(name="m-unsized", url=f"{url}/long", size=0), mdir / "unsized.toml")
    monkeypatch.setenv("EDGEPOSE_MANIFEST_PATH", str(mdir))
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGEPOSE_MODEL_PATH", raising=False)
    yield url, sent
    httpd.shutdown()
    httpd.server_close()


def _cache() -> list[str]:
    d = cache_dir()
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_a_good_mirror_still_works(mirror: tuple[str, dict[str, int]]) -> None:
    path = fetch_model("m-ok", timeout=2)
    assert path.read_bytes() == DATA and _cache() == ["m.tflite"]


def test_a_trickling_mirror_trips_the_overall_deadline(mirror: tuple[str, dict[str, int]]) -> None:
    """A byte every 0.25 s never trips a 1 s read timeout; the download is stopped once it
    falls below the minimum rate, after 1 s + 32 KiB / 16 KiB/s = 3 s."""
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"too slow: \d+ of 32768 bytes in 3 s \(at least 16 KiB/s"):
        fetch_model("m-trickle", timeout=1)
    assert time.monotonic() - t0 < 1 + SIZE / MIN_RATE + 1.5
    assert _cache() == []


@pytest.mark.parametrize("name, match", [
    ("m-endless", "sent more than the 32768 bytes expected"),
    ("m-long", "sent more than the 32768 bytes expected"),
    ("m-liar", r"is 65536 bytes \(Content-Length\), the manifest expects 32768"),
])
def test_a_longer_download_stops_at_the_expected_size(mirror: tuple[str, dict[str, int]], name: str,
                                                      match: str) -> None:
    with pytest.raises(FetchError, match=match):
        fetch_model(name, timeout=2)
    assert _cache() == []


def test_without_a_size_the_content_length_or_the_cap_bounds_it(mirror: tuple[str, dict[str, int]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest without ``size`` and a server without Content-Length: MAX_BYTES bounds it
    (lowered here so the test is quick)."""
    monkeypatch.setattr("edgepose.models.download.MAX_BYTES", SIZE + 100)
    with pytest.raises(FetchError, match=f"sent more than the {SIZE + 100} bytes expected"):
        fetch_model("m-unsized", timeout=2)
    assert _cache() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_fetch_stopped_by_a_signal_removes_its_part_file(mirror: tuple[str, dict[str, int]],
                                                           signum: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "edgepose.cli.main", "models", "fetch", "m-trickle"],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while mirror[1].get("/trickle", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        parts = list(cache_dir().glob(".*.part"))
        assert len(parts) == 1, "the download never started"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert err.splitlines() == [f"edgepose: stopped by {signal.Signals(signum).name} before it finished"]
    assert _cache() == []
