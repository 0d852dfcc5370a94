"""A one-client MQTT 3.1.1 broker stand-in on 127.0.0.1 that writes down every packet it
gets, so that a test can read what the output said on the wire (the CONNECT flags, the
last will, the credentials, each PUBLISH's QoS and retain bit), which a real broker
only shows through its behaviour. It answers CONNECT with a chosen return code, QoS 1
with PUBACK and PINGREQ with PINGRESP; nothing else (no subscriptions, no routing).

Packet layouts: MQTT 3.1.1 (OASIS standard), sections 2.2 (fixed header), 3.1
(CONNECT), 3.2 (CONNACK), 3.3 (PUBLISH)."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class Connect:
    protocol: str
    level: int
    clean_session: bool
    keepalive: int
    client_id: str
    will: tuple[str, bytes, int, bool] | None  # topic, message, qos, retain
    username: str | None
    password: bytes | None


@dataclass
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class Session:
    connects: list[Connect] = field(default_factory=list)
    publishes: list[Publish] = field(default_factory=list)
    disconnected: bool = False  # a DISCONNECT packet (a goodbye, not a dropped socket)


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_packet(conn: socket.socket) -> tuple[int, int, bytes]:
    first = _read_exact(conn, 1)[0]
    length, shift = 0, 0
    while True:
        byte = _read_exact(conn, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first >> 4, first & 0x0F, _read_exact(conn, length)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def blob(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        return self.blob().decode("utf-8")


def parse_connect(body: bytes) -> Connect:
    r = _Reader(body)
    protocol, level, flags, keepalive = r.text(), r.take(1)[0], r.take(1)[0], r.u16()
    client_id = r.text()
    will = None
    if flags & 0x04:
        will = (r.text(), r.blob(), (flags >> 3) & 0x03, bool(flags & 0x20))
    username = r.text() if flags & 0x80 else None
    password = r.blob() if flags & 0x40 else None
    return Connect(protocol, level, bool(flags & 0x02), keepalive, client_id, will, username, password)


def parse_publish(flags: int, body: bytes) -> tuple[Publish, int | None]:
    r = _Reader(body)
    topic = r.text()
    qos = (flags >> 1) & 0x03
    packet_id = r.u16() if qos else None
    return Publish(topic, body[r.at:], qos, bool(flags & 0x01)), packet_id


class WireBroker:
    """Serves one client connection at a time on a random port; ``session`` holds what
    it got. ``connack`` is the CONNACK return code (0 accepts, 5 is "not authorized")."""

    def __init__(self, connack: int = 0) -> None:
        self.connack = connack
        self.session = Session()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="mqtt-wire", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                try:
                    self._talk(conn)
                except (EOFError, OSError):
                    pass

    def _talk(self, conn: socket.socket) -> None:
        while True:
            kind, flags, body = _read_packet(conn)
            if kind == 1:
                with self._lock:
                    self.session.connects.append(parse_connect(body))
                conn.sendall(bytes([0x20, 2, 0, self.connack]))
                if self.connack:
                    return  # a refusal ends the connection (3.2.2.3)
            elif kind == 3:
                publish, packet_id = parse_publish(flags, body)
                with self._lock:
                    self.session.publishes.append(publish)
                if packet_id is not None:
                    conn.sendall(bytes([0x40, 2]) + struct.pack(">H", packet_id))
            elif kind == 12:
                conn.sendall(bytes([0xD0, 0]))
            elif kind == 14:
                with self._lock:
                    self.session.disconnected = True
                return

    def publishes(self, topic: str) -> list[Publish]:
        with self._lock:
            return [p for p in self.session.publishes if p.topic == topic]

    def close(self) -> None:
        try:  # wakes the accept() that close() alone would leave blocked
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)
