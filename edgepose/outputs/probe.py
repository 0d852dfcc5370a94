"""Can each configured output be reached? The answers behind ``edgepose doctor``'s
outputs section: ``probe_output(spec)`` and ``probe_serve(bind, token)`` return
``(ok, detail)`` with a short reason or fix, never raise, and give up after ``timeout``.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from edgepose.core.errors import EdgePoseError, describe_error
from edgepose.outputs import make_output

TIMEOUT = 2.0


def probe_output(spec: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """(ok, detail) for an ``--output`` spec: well formed, and its peer answers
    (WebSocket handshake, MQTT CONNACK); a file output's folder is writable; OSC over
    UDP is only resolved, as it has no answer to wait for."""
    try:
        out = make_output(spec)
        out.check()
    except EdgePoseError as err:
        return False, str(err)
    kind = getattr(out, "kind", "")
    try:
        if kind == "ws":
            return _probe_ws(out, timeout)
        if kind == "mqtt":
            return _probe_mqtt(out, timeout)
        if kind == "osc":
            host, port = getattr(out, "host"), getattr(out, "port")  # noqa: B009  (OscOutput)
            address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0]
            return True, (f"UDP to {host}:{port} ({address}); OSC sends no reply, so "
                          "whether something listens cannot be checked")
    except Exception as err:  # a probe reports, it never fails the doctor
        return False, f"{spec}: {describe_error(err)}"
    return True, f"{spec}: can be written"


def _probe_ws(out: Any, timeout: float) -> tuple[bool, str]:
    from edgepose.outputs.websocket import import_websockets_client

    client = import_websockets_client()
    host, port = out._address
    try:
        with client.connect(out.spec, open_timeout=timeout, close_timeout=0.2, proxy=None):
            pass
    except ConnectionRefusedError:
        return False, f"{out.spec}: connection refused at {host}:{port}; is the server running?"
    except Exception as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status is not None:
            return False, f"{out.spec}: the server answered HTTP {status}, not a WebSocket; check the path"
        return False, f"{out.spec}: {describe_error(err)}"
    return True, f"{out.spec}: the WebSocket server accepted a connection"


def _probe_mqtt(out: Any, timeout: float) -> tuple[bool, str]:
    from edgepose.outputs.mqtt import import_paho

    mqtt = import_paho()
    answer: list[Any] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=out.client_id + "-probe",
                         protocol=mqtt.MQTTv311)
    if out._user is not None:
        client.username_pw_set(out._user, out._password)
    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        answer.append(reason)
        done.set()

    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(out.host, out.port, keepalive=10)
    except ConnectionRefusedError:
        return False, (f"{out.spec}: connection refused at {out.host}:{out.port}; "
                       "is the broker running (sudo systemctl status mosquitto)?")
    deadline = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    if not answer:
        return False, f"{out.spec}: {out.host}:{out.port} accepted TCP but sent no MQTT answer in {timeout:g} s"
    if answer[0].is_failure:
        return False, f"{out.spec}: the broker refused the connection ({answer[0]}); check user and password"
    return True, f"{out.spec}: the broker accepted a connection"


def probe_serve(bind: str, token: str | None) -> tuple[bool, str]:
    """(ok, detail) for ``--serve``: the bind is allowed and its port is free now."""
    try:
        from edgepose.outputs.serve import check_bind

        host, port = check_bind(bind, token)
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except EdgePoseError as err:
        return False, str(err)
    except OSError as err:
        return False, (f"--serve {bind}: cannot listen there ({describe_error(err)}); pick another "
                       "port, or stop what uses it")
    return True, f"--serve {bind}: port {port} is free on {host}"
