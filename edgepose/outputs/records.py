"""The per-frame record every output shares (JSON Lines, WebSocket, MQTT, the web page)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edgepose.core.pose import Poses
from edgepose.sources.base import Frame


def frame_record(frame: Frame, poses: Poses, latency_ms: float, *, device: str = "",
                 timings: Mapping[str, float] | None = None, invokes: int = 0) -> dict[str, Any]:
    """The JSON-ready record of one processed frame.

    Keys: ``frame`` (index), ``timestamp`` (monotonic capture time, s), ``latency_ms``
    (capture to record), ``width``/``height`` (source pixels), ``schema``, ``device`` the
    frame was inferred on, ``invokes``, ``timings`` (ms per stage), ``poses``
    (``Poses.to_records()``: keypoints in source pixels with scores), and when set,
    ``file`` (the image's file name) and ``error`` (the frame could not be read).
    """
    height, width = frame.size
    record: dict[str, Any] = {
        "frame": int(frame.index),
        "timestamp": round(float(frame.timestamp), 6),
        "latency_ms": round(float(latency_ms), 3),
        "width": width,
        "height": height,
        "schema": poses.schema,
        "device": device,
        "invokes": int(invokes),
        "timings": {k: round(float(v), 3) for k, v in (timings or {}).items()},
        "poses": poses.to_records(),
    }
    if frame.name:
        record["file"] = frame.name
    if frame.error:
        record["error"] = frame.error
    return record


def record_text(record: Mapping[str, Any]) -> str:
    """The record as compact JSON: a JSON Lines line without its newline, and the text
    every network output sends."""
    return json.dumps(record, separators=(",", ":"))
