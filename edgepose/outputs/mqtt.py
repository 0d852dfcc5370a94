"""``mqtt://[USER:PASS@]HOST[:PORT]/TOPIC`` output: each frame's record as JSON (the same
JSON as a line of the JSON Lines output) published to ``TOPIC`` with QoS 0, for Home
Assistant, Node-RED or any MQTT consumer.

``TOPIC/status`` carries a retained ``online`` while the run is connected and
``offline`` after it ends; the same ``offline`` is the connection's last will, so the
broker publishes it when the run dies without saying goodbye (power cut, kill -9).

paho-mqtt (imported only here, extra ``net``) runs the connection on its network thread
and reconnects with its own exponential backoff (0.5 s doubling to 30 s) when the broker
is down at start or goes away mid-run; frames published meanwhile are dropped and
counted, the run goes on.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote

from edgepose.core.errors import ConfigError, describe_error
from edgepose.outputs.background import (
    BackgroundOutput,
    import_net,
    parse_url,
    url_port,
)
from edgepose.outputs.base import FrameResult
from edgepose.outputs.records import record_text

FORM = "mqtt://[USER:PASS@]HOST[:PORT]/TOPIC"
DEFAULT_PORT = 1883
STATUS_SUFFIX = "/status"
ONLINE, OFFLINE = "online", "offline"
KEEPALIVE_S = 15
#: how long one publish may wait to be written before the broker counts as stalled
PUBLISH_TIMEOUT = 2.0
#: a topic is a UTF-8 string with a 16-bit length (MQTT 3.1.1, section 1.5.3)
MAX_TOPIC_BYTES = 65535


def import_paho() -> Any:
    return import_net("paho.mqtt.client", "paho-mqtt", "mqtt:// outputs")


def parse_mqtt(spec: str) -> tuple[str, int, str, str | None, str | None]:
    """(host, port, topic, user, password) of an ``mqtt://`` spec, or ``ConfigError``."""
    url = parse_url(spec, ("mqtt",), FORM, default_port=DEFAULT_PORT)
    # the topic is all after the host, "?" and "#" included (urlsplit would cut them off)
    topic = unquote(spec.split("://", 1)[1].partition("/")[2])
    if not topic:
        raise ConfigError(f"output {spec}: no topic; expected {FORM}, e.g. mqtt://broker/edgepose/poses")
    if "+" in topic or "#" in topic:
        raise ConfigError(f"output {spec}: topic {topic!r} has a wildcard (+ or #); "
                          "publish to a plain topic such as edgepose/poses")
    if "\0" in topic:
        raise ConfigError(f"output {spec[:80]}: the topic holds a NUL character, which MQTT "
                          "forbids; publish to a plain topic such as edgepose/poses")
    size = len((topic + STATUS_SUFFIX).encode("utf-8", "surrogatepass"))
    if size > MAX_TOPIC_BYTES:
        raise ConfigError(f"output {spec[:60]}…: the topic (with its {STATUS_SUFFIX} twin) is {size} "
                          f"bytes of UTF-8, MQTT allows at most {MAX_TOPIC_BYTES}; use a short topic "
                          "such as edgepose/poses")
    user = unquote(url.username) if url.username else None
    password = unquote(url.password) if url.password else None
    assert url.hostname is not None
    return url.hostname, url_port(url, DEFAULT_PORT), topic, user, password


class MqttOutput(BackgroundOutput):
    """Publishes each record to an MQTT topic, with a retained status and a last will."""

    kind = "mqtt"
    # the waits between checks of paho's connection state; paho itself backs off
    retry_initial = 0.25
    retry_max = 1.0

    def __init__(self, spec: str, *, client_id: str | None = None, **_: Any) -> None:
        super().__init__(spec)
        self.host, self.port, self.topic, self._user, self._password = parse_mqtt(spec)
        self.status_topic = self.topic + STATUS_SUFFIX
        self.client_id = client_id or f"edgepose-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._client: Any = None
        self._up = threading.Event()
        self._reason = "no answer from the broker yet"
        self._failures = 0  # connection attempts paho reported as failed

    def check(self) -> None:
        import_paho()

    # -- paho callbacks (paho's network thread) -------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        try:
            self._connected_as(client, reason)
        except Exception as err:  # never an exception out of paho's thread
            self._reason = f"cannot greet the broker ({describe_error(err)})"
            self._failures += 1

    def _connected_as(self, client: Any, reason: Any) -> None:
        if reason.is_failure:
            self._reason = f"the broker refused the connection ({reason})"
            self._failures += 1
            return
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        self._up.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        # paho also calls this when a broker refuses the run (a wrong password) and hangs
        # up: the refusal is what the user needs to read, not "lost the connection"
        if self._up.is_set():
            self._reason = f"lost the connection to the broker ({reason})"
        self._up.clear()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._up.clear()
        self._reason = f"cannot connect to the broker at {self.host}:{self.port}"
        self._failures += 1

    # -- BackgroundOutput hooks (the output's thread) -------------------------------

    def _start(self) -> None:
        mqtt = import_paho()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        if self._user is not None:
            client.username_pw_set(self._user, self._password)
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=0.5, max_delay=30)
        client.connect_timeout = 2.0
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.suppress_exceptions = True  # a callback's failure is not paho's thread's end
        client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
        client.loop_start()
        self._client = client

    def _connect(self) -> None:
        """Wait for paho's connection: back as soon as it is up or an attempt failed."""
        failures = self._failures
        if self._client is None:
            self._start()
        deadline = time.monotonic() + 2.5
        while not self._up.wait(timeout=0.05):
            if self._failures != failures or time.monotonic() > deadline or self._stop.is_set():
                raise ConnectionError(self._reason)

    def _send(self, result: FrameResult) -> None:
        if not self._up.is_set():
            raise ConnectionError(self._reason)
        info = self._client.publish(self.topic, record_text(result.record), qos=0)
        if info.rc:
            raise ConnectionError(self._reason if not self._up.is_set() else f"publish failed (rc {info.rc})")
        try:
            info.wait_for_publish(timeout=PUBLISH_TIMEOUT)
        except RuntimeError:  # the connection went while the message waited
            raise ConnectionError(self._reason) from None
        if not info.is_published():
            raise TimeoutError(f"the broker took no message for {PUBLISH_TIMEOUT:g} s")

    def _reset(self) -> None:
        """paho keeps reconnecting on its own; nothing to undo here."""

    def _disconnect(self) -> None:
        client = self._client
        if client is None:
            return
        if self._up.is_set():
            info = client.publish(self.status_topic, OFFLINE, qos=0, retain=True)
            info.wait_for_publish(timeout=0.3)
        self._abort()

    def _abort(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        # loop_stop() joins paho's thread, which may sit in a connect attempt for up to
        # connect_timeout: wait for it briefly only, it is a daemon thread anyway.
        stopper = threading.Thread(target=client.loop_stop, name="edgepose-mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(0.3)
