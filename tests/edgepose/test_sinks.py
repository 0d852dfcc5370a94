"""JSON Lines sink on real MoveNet / PoseNet output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepose.errors import ConfigError
from edgepose.sinks import JsonLinesSink, frame_record
from edgepose.sources import open_source
from tests.conftest import shared_path


@pytest.fixture
def couple_results():
    from edgepose.engine import open_engine

    path = shared_path("images", "posenet_test_couple.jpg")
    with open_source(str(path)) as src:
        frame = src.read()
    assert frame is not None
    with open_engine("posenet-mobilenet-v1-075-481x641", "cpu") as engine:
        poses = engine.infer(frame.image)
    return frame, poses


def test_records_are_one_complete_json_line_each(tmp_path: Path, couple_results) -> None:
    frame, poses = couple_results
    assert len(poses) >= 2  # two people in the picture
    out = tmp_path / "poses.jsonl"
    sink = JsonLinesSink(out)
    for latency in (12.5, 13.25):
        sink.write(frame_record(frame, poses, latency))
        # flushed per line: a reader sees the record before the sink is closed
        assert out.read_text().endswith("}\n")
    sink.close()
    sink.close()  # closing twice is harmless
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    recs = [json.loads(line) for line in lines]
    h, w = frame.size
    assert [r["latency_ms"] for r in recs] == [12.5, 13.25]
    for r in recs:
        assert (r["frame"], r["width"], r["height"]) == (frame.index, w, h)
        assert r["timestamp"] == pytest.approx(frame.timestamp, abs=1e-6)
        assert len(r["poses"]) == len(poses)
        for i, p in enumerate(r["poses"]):
            assert len(p["keypoints"]) == 17
            assert p["score"] == pytest.approx(float(poses.pose_scores[i]), abs=1e-4)
            for k, kp in enumerate(p["keypoints"]):
                assert kp["x"] == pytest.approx(float(poses.xy[i, k, 0]), abs=0.01)
                assert kp["y"] == pytest.approx(float(poses.xy[i, k, 1]), abs=0.01)
    with pytest.raises(ValueError, match="closed"):
        sink.write(recs[0])


def test_dash_writes_to_stdout_and_leaves_it_open(capsys: pytest.CaptureFixture[str],
                                                  couple_results) -> None:
    frame, poses = couple_results
    sink = JsonLinesSink("-")
    sink.write(frame_record(frame, poses, 1.0))
    sink.close()
    print("still open")
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[0])["frame"] == frame.index and out[1] == "still open"


@pytest.mark.parametrize("target", ["missing-dir/out.jsonl", "."])
def test_unwritable_target_is_a_config_error(tmp_path: Path, target: str) -> None:
    with pytest.raises(ConfigError, match=r"--json .*cannot open for writing") as info:
        JsonLinesSink(tmp_path / target)
    assert "\n" not in str(info.value)
