"""Outputs as plug-ins in one registry of kinds, chosen by the spec's URL scheme or file
suffix, or by name.

``make_output(spec)`` returns an unopened ``Output``: ``-`` is JSON Lines on stdout, a
path ending in ``.jsonl``/``.ndjson``/``.json`` a JSON Lines file, ``.mp4`` a recording of
the annotated frames, ``ws://``/``wss://`` a WebSocket client, ``mqtt://`` an MQTT
publisher and ``osc://`` OSC messages over UDP. ``make_output(spec, kind=...)`` makes the
kind named, whatever the spec looks like: that is how ``edgepose-run``'s flags build theirs
(``--json``: ``jsonl``, ``--record``: ``mp4``, ``--snapshot-dir``: ``snapshots``,
``--serve``: ``serve``; the table is ``edgepose.cli.run.OUTPUT_FLAGS``).
``register_output`` adds a kind (or replaces one): a plug-in is then made, checked,
opened and closed exactly like the built-ins. Backends are imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgepose.core.errors import ConfigError
from edgepose.core.plugins import load_reference
from edgepose.outputs.base import FrameResult, Output

__all__ = ["FrameResult", "Output", "OUTPUT_HELP", "make_output", "output_kind", "register_output"]

# kind -> "module:attribute" of a factory taking (spec, **options), imported at first use
_BACKENDS: dict[str, str] = {
    "jsonl": "edgepose.outputs.jsonl:JsonLinesOutput",
    "mp4": "edgepose.outputs.recording:RecordingOutput",
    "ws": "edgepose.outputs.websocket:WebSocketOutput",
    "wss": "edgepose.outputs.websocket:WebSocketOutput",
    "mqtt": "edgepose.outputs.mqtt:MqttOutput",
    "osc": "edgepose.outputs.osc:OscOutput",
    "snapshots": "edgepose.outputs.snapshots:SnapshotOutput",  # a folder: --snapshot-dir only
    "serve": "edgepose.outputs.serve:ServeOutput",  # [HOST:]PORT: --serve only
}
# what a spec selects (output_kind: its scheme, "-" or its suffix) -> the kind that makes it;
# a kind missing here (snapshots, serve, jsonl, mp4 as schemes) is made by name only
_SPEC_KINDS: dict[str, str] = {
    "-": "jsonl", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".mp4": "mp4",
    "ws": "ws", "wss": "wss", "mqtt": "mqtt", "osc": "osc",
}
_FACTORIES: dict[str, Callable[..., Output]] = {}  # kind -> factory, registered or imported

OUTPUT_HELP = ("FILE.jsonl (JSON Lines; - for stdout), FILE.mp4 (annotated recording), "
               "ws://HOST:PORT/PATH, mqtt://[USER:PASS@]HOST[:PORT]/TOPIC or osc://HOST:PORT[/PREFIX]")


def register_output(key: str, factory: Callable[..., Output]) -> None:
    """Add a backend for a URL scheme (``"zmq"``) or a file suffix (``".csv"``): specs
    with it (``--output zmq://...``) are made by ``factory(spec, **options)``, which returns
    an unopened ``Output``. The name of a built-in kind that no spec selects (``"jsonl"``,
    ``"mp4"``, ``"snapshots"``, ``"serve"``) replaces what that kind's flag builds."""
    _FACTORIES[key] = factory
    if key not in _BACKENDS:
        _SPEC_KINDS[key] = key


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


def _factory(kind: str) -> Callable[..., Output] | None:
    if kind in _FACTORIES:
        return _FACTORIES[kind]
    target = _BACKENDS.get(kind)
    if target is None:
        return None
    factory: Callable[..., Output] = load_reference(target)
    _FACTORIES[kind] = factory
    return factory


def make_output(spec: str, *, kind: str | None = None, **options: Any) -> Output:
    """The unopened output for ``spec`` (see ``OUTPUT_HELP``); ConfigError when unknown.

    With ``kind`` the output is that kind's, made from ``spec`` as it is (a folder, a
    ``[HOST:]PORT``, a file of any name), not the one the spec's scheme or suffix selects."""
    if kind is not None:
        named = _factory(kind)
        if named is None:
            raise ConfigError(f"output kind {kind!r} is not registered; known kinds: "
                              f"{', '.join(sorted(set(_BACKENDS) | set(_FACTORIES)))}")
        return named(spec, **options)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"output {spec!r} is empty: pass {OUTPUT_HELP}")
    key = output_kind(spec)
    factory = _factory(_SPEC_KINDS[key]) if key in _SPEC_KINDS else None
    if factory is None:
        what = f"scheme {key}://" if "://" in spec else (f"suffix {key}" if key else "no suffix")
        raise ConfigError(f"output {spec}: {what} is not an output edgepose knows; pass {OUTPUT_HELP}")
    return factory(spec.strip(), **options)
