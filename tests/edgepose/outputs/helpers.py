"""Real frames and real poses for the network-output tests, and a real Mosquitto broker.

``real_results(n)`` runs MoveNet Lightning on the CPU over the first ``n`` frames of a
real video (../shared) and builds the ``FrameResult`` every output receives, with the
record made by ``frame_record`` as the pipeline makes it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgepose.outputs.base import FrameResult
from tests.conftest import shared_path

VIDEO = "sports2d_demo.mp4"


@functools.lru_cache(maxsize=4)
def _results(count: int, video: str) -> tuple[FrameResult, ...]:
    from edgepose.inference.engine import open_engine
    from edgepose.outputs.records import frame_record
    from edgepose.sources import open_source

    source = open_source(str(shared_path("videos", video)))
    engine = open_engine("movenet-lightning", "cpu")
    out = []
    try:
        for frame in source:
            poses = engine.infer(frame.image)
            latency = (time.monotonic() - frame.timestamp) * 1e3
            record = frame_record(frame, poses, latency, device=engine.device,
                                  timings=engine.timings, invokes=1)
            out.append(FrameResult(record, frame.image, poses))
            if len(out) == count:
                break
    finally:
        source.close()
        engine.close()
    assert len(out) == count, f"{video} has fewer than {count} frames"
    return tuple(out)


def real_results(count: int, video: str = VIDEO) -> list[FrameResult]:
    """The first ``count`` frames of ``video`` with MoveNet's poses (cached per session)."""
    return list(_results(count, video))


def as_json_line(record: dict[str, Any]) -> Any:
    """What a reader of the JSON Lines output gets back for ``record``."""
    return json.loads(json.dumps(record))


def assert_config_error(spec: str, message: str) -> None:
    """``make_output(spec).check()`` fails with one ConfigError line naming the spec."""
    from edgepose.core.errors import ConfigError
    from edgepose.outputs import make_output

    with pytest.raises(ConfigError, match=message) as err:
        make_output(spec).check()
    assert spec in str(err.value) and "\n" not in str(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` s naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


class Feeder:
    """Writes ``results`` to ``output`` over and over at ``fps`` from a thread, as a
    camera-paced pipeline would, until ``stop()``."""

    def __init__(self, output: Any, results: list[FrameResult], fps: float = 15.0) -> None:
        import threading

        self.output, self.results, self.period = output, results, 1.0 / fps
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.output.write(self.results[self.count % len(self.results)])
            self.count += 1
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Mosquitto:
    """Debian's mosquitto on 127.0.0.1 with its own config file and a persistence folder,
    so that a persistent subscriber's session survives a restart of the broker."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            pytest.skip("mosquitto is not installed (apt install mosquitto; scripts/setup.sh does it as root)")
        self.exe = exe
        self.port = free_port()
        self.folder = folder
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (f"allow_anonymous false\npassword_file {self._passwords(users)}\n" if users else
               "allow_anonymous true\n") +
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "autosave_interval 0\n"
            "queue_qos0_messages true\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
            "log_type error\n"
            # as root, mosquitto would switch to its own user, who cannot write here
            + ("user root\n" if os.geteuid() == 0 else ""))
        self.proc: subprocess.Popen[bytes] | None = None

    def _passwords(self, users: dict[str, str]) -> Path:
        """A mosquitto password file for ``users`` (made by mosquitto_passwd)."""
        tool = shutil.which("mosquitto_passwd")
        if tool is None:
            pytest.skip("mosquitto_passwd is not installed (apt install mosquitto)")
        path = self.folder / "passwords"
        path.write_text("")
        for user, password in users.items():
            subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
        path.chmod(0o600)
        return path

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {(self.folder / 'mosquitto.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, 10, "mosquitto to listen")

    def save(self) -> None:
        """Write the persistence database now (SIGUSR1)."""
        db = self.folder / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: db.exists() and db.stat().st_mtime_ns != before, 5, "mosquitto.db")

    def kill(self) -> None:
        """SIGKILL: the broker dies at once, as on a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


class Subscriber:
    """A paho client collecting what the broker delivers: (topic, payload, retain)."""

    def __init__(self, port: int, topics: list[str], *, client_id: str = "edgepose-test-sub",
                 persistent: bool = False) -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.topics = topics

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not flags.session_present:
                client.subscribe([(t, 1) for t in topics])
            else:
                self._subscribed.set()

        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(5), "subscriber got no SUBACK"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
