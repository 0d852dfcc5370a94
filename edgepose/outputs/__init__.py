"""Outputs as plug-ins chosen by the spec's URL scheme or file suffix.

``make_output(spec)`` returns an unopened ``Output``: ``-`` is JSON Lines on stdout, a
path ending in ``.jsonl``/``.ndjson``/``.json`` a JSON Lines file, ``.mp4`` a recording of
the annotated frames, ``ws://``/``wss://`` a WebSocket client, ``mqtt://`` an MQTT
publisher and ``osc://`` OSC messages over UDP. Backends are imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgepose.core.errors import ConfigError
from edgepose.outputs.base import FrameResult, Output

__all__ = ["FrameResult", "Output", "OUTPUT_HELP", "make_output", "output_kind", "register_output"]

# scheme or suffix -> "module:attribute" of a factory taking (spec, **options)
_BACKENDS: dict[str, str] = {
    "-": "edgepose.outputs.jsonl:JsonLinesOutput",
    ".jsonl": "edgepose.outputs.jsonl:JsonLinesOutput",
    ".ndjson": "edgepose.outputs.jsonl:JsonLinesOutput",
    ".json": "edgepose.outputs.jsonl:JsonLinesOutput",
    ".mp4": "edgepose.outputs.recording:RecordingOutput",
    "ws": "edgepose.outputs.websocket:WebSocketOutput",
    "wss": "edgepose.outputs.websocket:WebSocketOutput",
    "mqtt": "edgepose.outputs.mqtt:MqttOutput",
    "osc": "edgepose.outputs.osc:OscOutput",
}
_FACTORIES: dict[str, Callable[..., Output]] = {}

OUTPUT_HELP = ("FILE.jsonl (JSON Lines; - for stdout), FILE.mp4 (annotated recording), "
               "ws://HOST:PORT/PATH, mqtt://[USER:PASS@]HOST[:PORT]/TOPIC or osc://HOST:PORT[/PREFIX]")


def register_output(key: str, factory: Callable[..., Output]) -> None:
    """Add a backend for a URL scheme (``"zmq"``) or a file suffix (``".csv"``)."""
    _FACTORIES[key] = factory


def output_kind(spec: str) -> str:
    """The backend key of ``spec``: its URL scheme, ``-``, or its file suffix."""
    s = spec.strip()
    if s == "-":
        return "-"
    scheme, sep, _ = s.partition("://")
    if sep and scheme.isalnum():
        return scheme.lower()
    dot = s.rfind(".")
    return s[dot:].lower() if dot > s.rfind("/") else ""


def _factory(key: str) -> Callable[..., Output] | None:
    if key in _FACTORIES:
        return _FACTORIES[key]
    target = _BACKENDS.get(key)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    factory: Callable[..., Output] = getattr(importlib.import_module(module), attr)
    _FACTORIES[key] = factory
    return factory


def make_output(spec: str, **options: Any) -> Output:
    """The unopened output for ``spec`` (see ``OUTPUT_HELP``); ConfigError when unknown."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"output {spec!r} is empty: pass {OUTPUT_HELP}")
    key = output_kind(spec)
    factory = _factory(key)
    if factory is None:
        what = f"scheme {key}://" if "://" in spec else (f"suffix {key}" if key else "no suffix")
        raise ConfigError(f"output {spec}: {what} is not an output edgepose knows; pass {OUTPUT_HELP}")
    return factory(spec.strip(), **options)
