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

from edgepose.core.pose import Poses
from edgepose.outputs.background import BackgroundOutput, Backoff, url_port
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

    def __init__(self, refuse: int = 0, break_on: tuple[int, ...] = (), niceness: int = 0) -> None:
        self.refuse, self.break_on, self.niceness = refuse, break_on, niceness
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
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectionRefusedError(111, "Connection refused")

    def _send(self, result: FrameResult) -> None:
        self.sends += 1
        if self.sends in self.break_on:
            raise BrokenPipeError(32, "Broken pipe")
        self.sent.append(result.record["frame"])

    def _idle(self) -> None:
        if self.hold_idle:
            self.idling.set()
            self.idle_gate.wait(5)

    def _reset(self) -> None:
        self.calls.append("reset")

    def _disconnect(self) -> None:
        self.calls.append("disconnect")

    def _abort(self) -> None:
        self.calls.append("abort")


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
    out.hold_idle = True
    _until(out.idling.is_set, "the thread to idle")
    out.write(_result(7))
    threading.Timer(0.05, out.idle_gate.set).start()  # let it go once close() has begun
    out.close()
    assert out.sent == [7] and out.written == 1 and out.calls == ["connect", "disconnect"]


def test_never_connected_at_close_forgets_the_connection() -> None:
    out = Scripted(refuse=10**6)
    _until(lambda: out.outages == 1, "the outage")
    out.write(_result(1))
    out.close()
    assert out.sent == [] and out.calls[-1] == "reset" and "disconnect" not in out.calls


def test_a_heavy_output_runs_nicer_than_the_pipeline() -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    light, heavy = Scripted(), Scripted(niceness=5)
    _until(lambda: light.nice_in_thread is not None and heavy.nice_in_thread is not None, "both threads")
    light.close()
    heavy.close()
    assert light.nice_in_thread == base and heavy.nice_in_thread == min(base + 5, 19)
