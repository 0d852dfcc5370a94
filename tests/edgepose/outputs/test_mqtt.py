"""MQTT output against a real Mosquitto broker on 127.0.0.1 (started by the tests)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgepose.outputs import make_output
from edgepose.outputs.mqtt import MqttOutput
from edgepose.outputs.records import record_text
from tests.conftest import REPO
from tests.edgepose.outputs.helpers import (
    Mosquitto,
    Subscriber,
    as_json_line,
    assert_config_error,
    free_port,
    real_results,
    wait_for,
)
from tests.edgepose.outputs.mqtt_wire import Connect, Publish, WireBroker

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (extra net)")

TOPIC = "edgepose/test/poses"
PERIOD = 0.08  # 12.5 frames/s: the output keeps up even on a busy machine


def frames_of(payloads: list[bytes]) -> list[int]:
    return [json.loads(p)["frame"] for p in payloads]


def write_paced(out: MqttOutput, results: list) -> None:
    """Write ``results`` at the test's frame rate."""
    for r in results:
        out.write(r)
        time.sleep(PERIOD)


def stream_when_connected(out: MqttOutput, results: list) -> None:
    """Wait for the connection, then write ``results`` at the test's frame rate."""
    wait_for(lambda: out.connected_at, 10, "the output to connect")
    write_paced(out, results)


def warnings_about(caplog: pytest.LogCaptureFixture, spec: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and spec in r.getMessage()]


def wait_for_paho_to_end(client_id: str, timeout: float) -> None:
    """paho's network thread for ``client_id`` is gone (not left running after close)."""
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == f"paho-mqtt-client-{client_id}"],
             timeout, "paho's thread to end")


@pytest.mark.parametrize("spec, message", [
    ("mqtt://broker", "no topic"),
    ("mqtt://broker:1883/", "no topic"),
    ("mqtt://broker/edgepose/#", "wildcard"),
    ("mqtt://broker/a/+/b", "wildcard"),
    ("mqtt://:1883/topic", "no host"),
    ("mqtt://broker:99999/topic", "port"),
    ("mqtt://broker:abc/topic", "port"),
])
def test_bad_urls_are_one_line_config_errors(spec: str, message: str) -> None:
    assert_config_error(spec, message)


def test_url_parts() -> None:
    out = make_output("mqtt://me:s%40cret@broker.lan:1884/home/pose")
    assert isinstance(out, MqttOutput)
    assert (out.host, out.port, out.topic, out.status_topic) == ("broker.lan", 1884, "home/pose",
                                                                   "home/pose/status")
    assert (out._user, out._password) == ("me", "s@cret")
    assert make_output("mqtt://broker/p").port == 1883
    # all after the host is the topic, even what looks like another URL
    assert make_output("mqtt://broker/cams/rtsp://cam1/pose").topic == "cams/rtsp://cam1/pose"


def test_one_message_per_frame_with_the_json_lines_content(broker: Mosquitto) -> None:
    results = real_results(40)
    sub = Subscriber(broker.port, [TOPIC, TOPIC + "/status"])
    out = make_output(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}")
    out.check()
    out.open()
    try:
        stream_when_connected(out, results)
    finally:
        out.close()
    wait_for(lambda: len(sub.payloads(TOPIC)) >= len(results), 5, "all frames at the subscriber")
    got = [json.loads(p) for p in sub.payloads(TOPIC)]
    assert got == [as_json_line(r.record) for r in results]
    assert out.written == len(results) and out.dropped == 0
    wait_for(lambda: sub.payloads(TOPIC + "/status")[-1:] == [b"offline"], 5, "status offline")
    assert b"online" in sub.payloads(TOPIC + "/status")
    sub.close()
    # the status is retained: a late subscriber learns that the run is over
    late = Subscriber(broker.port, [TOPIC + "/status"], client_id="late")
    wait_for(lambda: late.payloads(TOPIC + "/status") == [b"offline"], 5, "retained status")
    late.close()


def test_broker_killed_and_restarted_mid_run_loses_only_the_frames_while_down(
        broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edgepose")
    results = real_results(120)
    # a persistent session, saved to disk, so the subscriber misses nothing after the
    # restart: what it lacks was lost by the output, not by the test's own client
    sub = Subscriber(broker.port, [TOPIC], client_id="persistent-sub", persistent=True)
    broker.save()
    spec = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    out = make_output(spec)
    out.open()
    written_at: dict[int, float] = {}
    longest_write = 0.0
    try:
        wait_for(lambda: out.connected_at, 10, "the output to connect")
        for i, r in enumerate(results):
            if i == 30:  # all sent so far has arrived: now the broker dies
                wait_for(lambda: len(sub.payloads(TOPIC)) == 30, 5, "the first 30 frames")
                broker.kill()
                killed_at = time.monotonic()
            if i == 55:
                broker.start()
            t0 = time.monotonic()
            out.write(r)
            longest_write = max(longest_write, time.monotonic() - t0)
            written_at[r.record["frame"]] = t0
            time.sleep(PERIOD)
        reconnected_at = out.connected_at
        assert reconnected_at is not None and reconnected_at > killed_at
        wait_for(lambda: written_at[results[-1].record["frame"]] > reconnected_at, 1, "")
    finally:
        out.close()
    last = results[-1].record["frame"]
    wait_for(lambda: last in frames_of(sub.payloads(TOPIC)), 10, "the last frame after the restart")
    got = {json.loads(p)["frame"]: json.loads(p) for p in sub.payloads(TOPIC)}
    expected = {r.record["frame"]: as_json_line(r.record) for r in results}
    assert all(got[f] == expected[f] for f in got)
    missing = sorted(set(expected) - set(got))
    assert missing, "the broker was down for 25 frames (2 s): some must be missing"
    # only frames written while the broker was down (between the kill and the reconnect)
    assert all(killed_at <= written_at[f] <= reconnected_at for f in missing), missing
    assert out.written + out.dropped == len(results)
    assert out.outages == 1 and "unreachable 1 time(s)" in out.summary()
    # the run went on: write() never waited for the dead broker (generous bound)
    assert longest_write < 0.5
    # one warning for the outage, not one per retry; one line again when back
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and spec in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert any("connected again" in r.getMessage() for r in caplog.records)
    sub.close()


def test_broker_down_at_start_then_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgepose")
    results = real_results(60)
    broker = Mosquitto(tmp_path)  # not started yet
    spec = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    out = make_output(spec)
    out.open()
    try:
        for r in results[:20]:
            out.write(r)
            time.sleep(PERIOD)
        assert out.written == 0 and out.connected_at is None
        broker.start()
        sub = Subscriber(broker.port, [TOPIC])
        wait_for(lambda: out.connected_at, 30, "the output to connect once the broker is up")
        for r in results[20:]:
            out.write(r)
            time.sleep(PERIOD)
    finally:
        out.close()
    wait_for(lambda: results[-1].record["frame"] in frames_of(sub.payloads(TOPIC)), 5, "last frame")
    assert out.dropped >= 19 and out.written >= 40
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and spec in r.getMessage()]
    assert len(warnings) == 1 and "cannot connect to the broker" in warnings[0].getMessage()
    sub.close()
    broker.stop()


LAST_WILL_CHILD = """
import sys, time, os
sys.path.insert(0, {repo!r})
from edgepose.outputs import make_output
out = make_output(sys.argv[1])
out.open()
while out.connected_at is None:
    time.sleep(0.02)
print("connected", flush=True)
time.sleep(60)
"""


def test_last_will_says_offline_when_the_run_dies(broker: Mosquitto) -> None:
    """A run killed without a goodbye: the broker publishes the retained will."""
    sub = Subscriber(broker.port, [TOPIC + "/status"])
    child = subprocess.Popen([sys.executable, "-c", LAST_WILL_CHILD.format(repo=str(REPO)),
                              f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"connected"
        wait_for(lambda: sub.payloads(TOPIC + "/status")[-1:] == [b"online"], 5, "online")
        child.kill()
        wait_for(lambda: sub.payloads(TOPIC + "/status")[-1:] == [b"offline"], 10, "the last will")
    finally:
        child.kill()
        child.wait()
    sub.close()


def test_close_is_bounded_while_the_broker_is_unreachable() -> None:
    out = make_output(f"mqtt://127.0.0.1:{free_port()}/{TOPIC}")
    out.open()
    out.write(real_results(1)[0])
    time.sleep(0.3)
    t0 = time.monotonic()
    out.close()
    assert time.monotonic() - t0 < 1.5
    # paho's retrying thread is stopped too: else a broker that came up later would
    # hear this closed run connect and say "online"
    wait_for_paho_to_end(out.client_id, 5)


def test_on_the_wire_who_the_run_is_its_last_will_and_each_message_s_qos_and_retain() -> None:
    """What the output says to the broker, read off the wire by a stand-in broker: a
    clean MQTT 3.1.1 session with the credentials of the URL and a retained QoS 1 last
    will; a retained QoS 1 "online", each frame at QoS 0 not retained, a retained
    "offline" and a DISCONNECT at the end."""
    wire = WireBroker()
    results = real_results(4)
    out = MqttOutput(f"mqtt://me:s%40cret@127.0.0.1:{wire.port}/{TOPIC}", client_id="pi-kitchen")
    out.open()
    try:
        stream_when_connected(out, results)
        wait_for(lambda: len(wire.publishes(TOPIC)) == len(results), 5, "all frames at the broker")
    finally:
        out.close()
        wire.close()
    status = TOPIC + "/status"
    assert wire.session.connects == [Connect("MQTT", 4, True, 15, "pi-kitchen", (status, b"offline", 1, True),
                                             "me", b"s@cret")]
    frames = [Publish(TOPIC, record_text(r.record).encode(), 0, False) for r in results]
    assert wire.session.publishes == [Publish(status, b"online", 1, True), *frames,
                                      Publish(status, b"offline", 0, True)]
    assert wire.session.disconnected
    wait_for_paho_to_end("pi-kitchen", 2)


def test_without_credentials_none_are_sent_and_each_run_names_itself() -> None:
    wire = WireBroker()
    spec = f"mqtt://127.0.0.1:{wire.port}/{TOPIC}"
    out = make_output(spec)
    assert isinstance(out, MqttOutput)
    out.open()
    try:
        wait_for(lambda: out.connected_at, 10, "the output to connect")
    finally:
        out.close()
        wire.close()
    (connect,) = wire.session.connects
    assert connect.username is None and connect.password is None
    # the host and the process in the id (which run is which on the broker), and a
    # random part, so two runs on one machine never throw each other off the broker
    assert connect.client_id == out.client_id
    assert out.client_id.startswith(f"edgepose-{socket.gethostname()}-{os.getpid()}-")
    assert make_output(spec).client_id != out.client_id


def test_a_broker_that_refuses_the_run_is_one_warning_saying_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgepose")
    wire = WireBroker(connack=5)  # not authorized
    spec = f"mqtt://127.0.0.1:{wire.port}/{TOPIC}"
    out = make_output(spec)
    out.open()
    try:
        write_paced(out, real_results(20))
        wait_for(lambda: len(wire.session.connects) >= 2, 10, "paho to try again")
    finally:
        out.close()
        wire.close()
    assert out.written == 0 and out.dropped == 20 and wire.session.publishes == []
    warnings = warnings_about(caplog, spec)
    assert len(warnings) == 1, warnings
    assert "the broker refused the connection (Not authorized)" in warnings[0]


def test_a_broker_that_never_answers_is_one_warning_saying_so(caplog: pytest.LogCaptureFixture) -> None:
    """A port that takes the TCP connection and never says a word (no CONNACK): the
    output gives up on the attempt after its deadline and names what it waited for."""
    caplog.set_level(logging.INFO, logger="edgepose")
    with socket.create_server(("127.0.0.1", 0)) as silent:
        spec = f"mqtt://127.0.0.1:{silent.getsockname()[1]}/{TOPIC}"
        out = make_output(spec)
        out.open()
        try:
            write_paced(out, real_results(40))  # 3.2 s, beyond the 2.5 s an attempt may take
        finally:
            out.close()
    assert out.written == 0 and out.connected_at is None
    warnings = warnings_about(caplog, spec)
    assert warnings == [f"{spec}: no answer from the broker yet; the run goes on, retrying in the background"]
