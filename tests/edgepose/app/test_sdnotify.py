"""sd_notify datagrams to a real Unix socket, path and abstract ('@') addresses."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from edgepose.app import sdnotify


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address: str | bytes = str(tmp_path / "notify.sock")
        env = str(address)
    else:
        name = f"edgepose-test-{uuid.uuid4().hex}"
        address, env = b"\0" + name.encode(), "@" + name
    sock.bind(address)
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", env)
    yield sock
    sock.close()


def test_ready_watchdog_stopping_arrive_as_datagrams(notify_socket: socket.socket) -> None:
    assert sdnotify.ready(status="pose pipeline running")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=pose pipeline running"
    assert sdnotify.notify("WATCHDOG=1")
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.stopping()
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_watchdog_pings_at_most_once_per_interval(notify_socket: socket.socket,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")  # WatchdogSec=4 -> ping every 2 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = sdnotify.Watchdog()
    assert dog.interval == 2.0
    sent = [dog.ping(now=t) for t in (100.0, 100.5, 101.9, 102.0, 103.0, 104.1)]
    assert sent == [True, False, False, True, False, True]
    assert [notify_socket.recv(64) for _ in range(3)] == [b"WATCHDOG=1"] * 3


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "abc"}, None),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "10000000"}, 5.0),
])
def test_watchdog_interval_from_environment(monkeypatch: pytest.MonkeyPatch, env: dict,
                                            expected: float | None) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert sdnotify.watchdog_interval() == expected


@pytest.mark.parametrize("value", ["", "relative/path.sock", "/nonexistent/dir/notify.sock"])
def test_without_a_usable_socket_notify_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch,
                                                         value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert sdnotify.ready() is False
    assert sdnotify.Watchdog(interval=1.0).ping() is False
