"""The per-frame record every output shares, key by key as its docstring and README's
"JSON Lines" section describe it, and its compact text."""

from __future__ import annotations

import json

import numpy as np

from edgepose.core.pose import Poses
from edgepose.outputs.records import frame_record, record_text
from edgepose.sources.base import Frame


def _poses() -> Poses:
    xy = np.arange(17 * 2, dtype=np.float32).reshape(1, 17, 2) * 3.5
    return Poses(xy, np.full((1, 17), 0.75, np.float32), np.array([0.6], np.float32))


def test_every_key_is_the_frames_rounded_as_documented() -> None:
    frame = Frame(np.zeros((48, 64, 3), np.uint8), timestamp=12.123456789, index=7, name="a.jpg")
    timings = {"invoke_ms": 1.23456, "decode_ms": 0.0004}
    record = frame_record(frame, _poses(), 33.33333, device="cpu", timings=timings, invokes=2)
    assert record == {
        "frame": 7, "timestamp": 12.123457, "latency_ms": 33.333, "width": 64, "height": 48,
        "schema": "coco17", "device": "cpu", "invokes": 2,
        "timings": {"invoke_ms": 1.235, "decode_ms": 0.0},
        "poses": _poses().to_records(), "file": "a.jpg",
    }
    assert [type(record[k]) for k in ("frame", "timestamp", "latency_ms", "invokes")] == [int, float, float, int]


def test_defaults_and_an_unreadable_frame() -> None:
    frame = Frame(np.zeros((1, 1, 3), np.uint8), timestamp=0.5, index=3, error="not an image")
    record = frame_record(frame, Poses.empty("mpii16"), 0.0)
    assert (record["device"], record["invokes"], record["timings"], record["poses"]) == ("", 0, {}, [])
    assert (record["schema"], record["error"]) == ("mpii16", "not an image") and "file" not in record


def test_record_text_is_compact_json() -> None:
    record = {"frame": 1, "poses": [{"score": 0.5}], "device": "cpu"}
    text = record_text(record)
    assert text == '{"frame":1,"poses":[{"score":0.5}],"device":"cpu"}'
    assert json.loads(text) == record
