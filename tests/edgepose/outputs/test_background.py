"""The base of the network outputs, driven through its hooks by a scripted peer: the
thread connects, sends, counts what it loses, says one warning per outage, backs off,
runs at its niceness, and sends the last frame at close."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np
import pytest

from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.outputs import background
from edgepose.outputs.background import BackgroundOutput, Backoff, parse_url, url_port
from edgepose.outputs.base import FrameResult


def _result(i: int) -> FrameResult:
    return FrameResult({"frame": i}, np.zeros((1, 1, 3), np.uint8), Poses.empty())


def _until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


class Scripted(BackgroundOutput):
    """A peer that refuses the first ``refuse`` connections and breaks on the sends
    numbered in ``break_on``; every call is recorded."""

    kind = "scripted"
    retry_initial = 0.01
    retry_max = 0.02

    def __init__(self, refuse: int = 0, break_on: tuple[int, ...] = (), niceness: int = 0,
                 stuck: str = "", idle_error: bool = False) -> None:
        self.refuse, self.break_on, self.niceness = refuse, break_on, niceness
        # "": sends return; "abortable": block until _abort; "deaf": block regardless;
        # "connect" and "send": block until _abort, then fail as a socket closed under them
        self.stuck = stuck
        self.blocked = threading.Event()
        self.unstuck = threading.Event()
        self.idle_error = idle_error
        self.calls: list[str] = []
        self.sent: list[int] = []
        self.sends = 0
        self.nice_in_thread: int | None = None
        self.go = threading.Event()
        self.go.set()
        self.idle_gate = threading.Event()  # _idle waits on it while ``hold_idle``
        self.hold_idle = False
        self.idling = threading.Event()
        super().__init__("scripted://peer")
        self.open()  # the thread starts here

    def _connect(self) -> None:
        self.go.wait(5)
        self.nice_in_thread = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        self.calls.append("connect")
        if self.stuck == "connect":
            self._fail_once_aborted(ConnectionResetError(104, "Connection reset by peer"))
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectionRefusedError(111, "Connection refused")

    def _send(self, result: FrameResult) -> None:
        self.sends += 1
        if self.stuck == "send":
            self._fail_once_aborted(BrokenPipeError(32, "Broken pipe"))
        if self.stuck:
            self.unstuck.wait(10 if self.stuck == "abortable" else 2)
        if self.sends in self.break_on:
            raise BrokenPipeError(32, "Broken pipe")
        self.sent.append(result.record["frame"])

    def _fail_once_aborted(self, err: OSError) -> None:
        """Block until _abort, then fail as a call on a socket closed under it."""
        self.blocked.set()
        self.unstuck.wait(10)
        raise err

    def _idle(self) -> None:
        if self.idle_error:
            raise RuntimeError("a bug in the backend")
        if self.hold_idle:
            self.idling.set()
            self.idle_gate.wait(5)

    def _reset(self) -> None:
        self.calls.append("reset")

    def _disconnect(self) -> None:
        self.calls.append("disconnect")

    def _abort(self) -> None:
        self.calls.append("abort")
        if self.stuck in ("abortable", "connect", "send"):
            self.unstuck.set()


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5
    assert [Backoff().next() for _ in range(1)] == [0.5]


def test_url_port_defaults_only_when_the_url_has_none() -> None:
    assert url_port(urlsplit("mqtt://h/t"), 1883) == 1883
    assert url_port(urlsplit("mqtt://h:1884/t"), 1883) == 1884


def test_a_refused_start_is_one_warning_then_every_frame_goes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "edgepose.outputs.background"):
        out = Scripted(refuse=3)
        _until(lambda: out.calls.count("connect") == 4, "the fourth connection")
        assert out.outages == 1 and out.last_error == "connection refused"
        for i in range(3):
            out.write(_result(i))
            _until(lambda i=i: out.sent[-1:] == [i], f"frame {i}")
        out.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["scripted://peer: connection refused; the run goes on, retrying in the "
                        "background"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == ["scripted://peer: connected again"]
    assert out.written == 3 and out.dropped == 0 and out.calls[-1] == "disconnect"
    assert out.summary() == "scripted://peer: 3 frame(s), unreachable 1 time(s)"


def test_a_send_that_breaks_loses_that_frame_resets_and_reconnects() -> None:
    out = Scripted(break_on=(2,))
    out.write(_result(0))
    _until(lambda: out.sent == [0], "frame 0")
    out.write(_result(1))  # the second send breaks: lost, the connection reset and made again
    _until(lambda: out.calls.count("connect") == 2, "the reconnection")
    assert out.calls == ["connect", "reset", "connect"]
    out.write(_result(2))
    _until(lambda: out.sent == [0, 2], "frame 2")
    out.close()
    assert (out.written, out.dropped, out.outages) == (2, 1, 1)
    assert out.summary() == "scripted://peer: 2 frame(s), 1 dropped, unreachable 1 time(s)"


def test_while_failing_the_summary_says_why() -> None:
    out = Scripted(refuse=10**6)
    _until(lambda: out.outages == 1, "the outage")
    out.close()
    assert out.summary() == "scripted://peer: 0 frame(s), unreachable 1 time(s) (now: connection refused)"


def test_the_last_frame_is_sent_at_close() -> None:
    """The thread is held in ``_idle`` while a frame arrives and close() begins: the
    frame is then sent by the goodbye, not by the loop."""
    out = Scripted()
    for i in range(2):
        out.write(_result(i))
        _until(lambda i=i: out.sent[-1:] == [i], f"frame {i}")
    out.hold_idle = True
    _until(out.idling.is_set, "the thread to idle")
    out.write(_result(7))
    threading.Timer(0.05, out.idle_gate.set).start()  # let it go once close() has begun
    out.close()
    assert out.sent == [0, 1, 7] and out.written == 3 and out.calls == ["connect", "disconnect"]


def test_never_connected_at_close_forgets_the_connection() -> None:
    out = Scripted(refuse=10**6)
    _until(lambda: out.outages == 1, "the outage")
    out.write(_result(1))
    out.close()
    # the attempt is ended (abort: an MQTT client's own retry thread stops too), no goodbye
    assert out.sent == [] and out.calls[-1] == "abort" and "disconnect" not in out.calls
    # the frame left waiting for a peer that never came is counted: nothing goes unsaid
    assert (out.written, out.dropped) == (0, 1)


def test_a_heavy_output_runs_nicer_than_the_pipeline() -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    light, heavy = Scripted(), Scripted(niceness=5)
    _until(lambda: light.nice_in_thread is not None and heavy.nice_in_thread is not None, "both threads")
    light.close()
    heavy.close()
    assert light.nice_in_thread == base and heavy.nice_in_thread == min(base + 5, 19)


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_peer_that_breaks_each_connection_at_once_is_one_outage(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Breaking within STABLE_S of connecting, again and again, is the same outage (one
    warning, quiet reconnections); stable for STABLE_S, a new break is a new outage."""
    monkeypatch.setattr(background, "STABLE_S", 0.3)
    with caplog.at_level(logging.DEBUG, "edgepose.outputs.background"):
        out = Scripted(break_on=(1, 2, 3, 4))
        for i in range(4):
            out.write(_result(i))
            _until(lambda i=i: out.calls.count("connect") == i + 2, f"reconnection {i + 1}")
        assert out.outages == 1 and len(_messages(caplog, logging.WARNING)) == 1
        assert _messages(caplog, logging.INFO) == ["scripted://peer: connected again"]
        out.write(_result(4))
        _until(lambda: out.sent == [4], "a frame through")
        time.sleep(0.4)  # stable now
        out.write(_result(5))
        _until(lambda: out.sent == [4, 5], "a second frame through")
        out.break_on = (7,)
        out.write(_result(6))
        _until(lambda: out.calls.count("connect") == 6, "the last reconnection")
        out.close()
    assert out.outages == 2 and len(_messages(caplog, logging.WARNING)) == 2
    assert out.dropped == 5  # the five frames whose sends broke


def test_a_last_frame_that_cannot_be_sent_is_counted_lost() -> None:
    out = Scripted(break_on=(1, 3))
    for i in range(2):  # the first is lost to a broken send, the second goes
        out.write(_result(i))
        _until(lambda i=i: out.sends == i + 1 and out.calls.count("connect") == 2, f"frame {i}")
    out.hold_idle = True
    _until(out.idling.is_set, "the thread to idle")
    out.write(_result(7))
    threading.Timer(0.05, out.idle_gate.set).start()
    out.close()
    assert out.sent == [1] and (out.written, out.dropped) == (1, 2)
    assert out.calls == ["connect", "reset", "connect", "disconnect"]


def test_a_send_stuck_at_close_is_aborted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "edgepose.outputs.background"):
        out = Scripted(stuck="abortable")
        out.close_timeout = 0.3
        out.write(_result(1))
        _until(lambda: out.sends == 1, "the send to start")
        out.close()
    assert "abort" in out.calls and _messages(caplog, logging.WARNING) == []


@pytest.mark.parametrize("stuck", ["connect", "send"])
def test_a_connection_cut_short_by_close_is_no_outage(stuck: str, caplog: pytest.LogCaptureFixture) -> None:
    """A handshake or a send that close() aborts fails like a broken connection: at
    shutdown that is no outage to warn about, and nothing is retried."""
    with caplog.at_level(logging.DEBUG, "edgepose.outputs.background"):
        out = Scripted(stuck=stuck)
        out.close_timeout = 0.3
        out.write(_result(1))
        _until(out.blocked.is_set, f"the {stuck} to block")
        out.close()
    assert _messages(caplog, logging.WARNING) == [] and out.outages == 0
    assert out.calls.count("connect") == 1 and "abort" in out.calls
    assert (out.written, out.dropped) == (0, 1)
    assert any(f"{stuck}ing ended by close" in m for m in _messages(caplog, logging.DEBUG))


def test_a_send_deaf_to_abort_is_left_behind_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "edgepose.outputs.background"):
        out = Scripted(stuck="deaf")
        out.close_timeout = 0.3
        out.write(_result(1))
        _until(lambda: out.sends == 1, "the send to start")
        out.close()
    assert _messages(caplog, logging.WARNING) == ["scripted://peer: still busy after 0.3 s at shutdown; left behind"]
    out.unstuck.set()


def test_an_error_in_idle_is_a_lost_connection(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "edgepose.outputs.background"):
        out = Scripted(idle_error=True)
        _until(lambda: out.calls.count("connect") >= 2, "a reconnection")
        out.close()
    assert out.outages == 1 and "reset" in out.calls
    assert _messages(caplog, logging.WARNING) == ["scripted://peer: a bug in the backend; the run goes on, "
                                                 "retrying in the background"]


class Buggy(Scripted):
    """An error where the thread expects none (outside the connect/send calls)."""

    def _connected(self) -> None:
        raise RuntimeError("a bug in the thread")


def test_a_bug_in_the_thread_stops_the_output_with_one_error_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "edgepose.outputs.background"):
        out = Buggy()
        _until(lambda: "abort" in out.calls, "the output to stop")
        out.write(_result(1))
        out.close()
    assert _messages(caplog, logging.ERROR) == ["scripted://peer: the output stopped (a bug in the thread); the "
                                               "run goes on without it"]
    assert out.last_error == "a bug in the thread" and out.sent == []


@pytest.mark.parametrize("spec, kwargs, problem", [
    ("http://h:1/x", {}, "the scheme is not ws:// or wss://"),
    ("ws:///x", {}, "no host"),
    ("ws://h:99999/x", {}, "the port is not a number from 1 to 65535"),
    ("ws://h/x", {}, "no port"),
    ("ws://h:0/x", {}, "port 0 is not a port to send to"),
    ("ws://h:1/", {"need_path": True}, "no path"),
])
def test_parse_url_names_the_problem_and_the_form(spec: str, kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_url(spec, ("ws", "wss"), "ws://HOST:PORT/PATH", **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == f"output {spec}: {problem}; expected ws://HOST:PORT/PATH"


def test_parse_url_takes_a_default_port_and_a_path() -> None:
    url = parse_url("WS://h/x", ("ws",), "f", default_port=80, need_path=True)
    assert (url.hostname, url.port, url.path) == ("h", None, "/x")
    assert parse_url("ws://h:1/", ("ws",), "f").port == 1
