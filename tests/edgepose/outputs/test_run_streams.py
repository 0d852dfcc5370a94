"""Network outputs through ``edgepose-run`` on a real video, against a real Mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path
from tests.edgepose.outputs.helpers import Mosquitto, Subscriber, wait_for

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (extra net)")

RUN = [sys.executable, "-m", "edgepose.cli.run"]
TOPIC = "edgepose/run/poses"
# played at its own 5 frames/s: a consumer that keeps up gets every frame even on a busy
# machine, so what is missing is what the outage cost, not what the newest-wins box dropped
VIDEO = "mmpose_demo.mp4"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_publishes_one_message_per_frame_as_the_json_lines(broker: Mosquitto, tmp_path: Path) -> None:
    video = shared_path("videos", VIDEO)
    sub = Subscriber(broker.port, [TOPIC, TOPIC + "/status"])
    jsonl = tmp_path / "poses.jsonl"
    proc = subprocess.run(RUN + ["--source", str(video), "--realtime", "--loop", "--display", "none",
                                 "--max-frames", "15", "--json", str(jsonl),
                                 "--output", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = lines(jsonl)
    assert len(expected) == 15
    wait_for(lambda: len(sub.payloads(TOPIC)) >= 15, 5, "15 messages")
    assert [json.loads(p) for p in sub.payloads(TOPIC)] == expected
    assert sub.payloads(TOPIC + "/status") == [b"online", b"offline"]
    assert f"mqtt://127.0.0.1:{broker.port}/{TOPIC}: 15 frame(s)" in proc.stderr
    sub.close()


def test_run_survives_the_broker_dying_and_coming_back(broker: Mosquitto, tmp_path: Path) -> None:
    video = shared_path("videos", VIDEO)
    sub = Subscriber(broker.port, [TOPIC], client_id="run-sub", persistent=True)
    broker.save()  # the subscriber's session outlives the broker's death
    jsonl = tmp_path / "poses.jsonl"
    spec = f"mqtt://127.0.0.1:{broker.port}/{TOPIC}"
    proc = subprocess.Popen(RUN + ["--source", str(video), "--realtime", "--loop", "--display", "none",
                                   "--json", str(jsonl), "--output", spec],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(sub.payloads(TOPIC)) >= 10, 60, "10 frames before the kill")
        broker.kill()
        killed_at = time.monotonic()
        time.sleep(1.0)
        broker.start()
        back = len(sub.payloads(TOPIC))
        wait_for(lambda: len(sub.payloads(TOPIC)) >= back + 10, 60, "10 frames after the restart")
        assert proc.poll() is None, "the run stopped"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    got = {json.loads(p)["frame"]: json.loads(p) for p in sub.payloads(TOPIC)}
    records = {r["frame"]: r for r in lines(jsonl)}
    assert all(got[f] == records[f] for f in got)  # what arrived is the JSON Lines' content
    first_back = min(f for f in got if records[f]["timestamp"] > killed_at)
    missing = sorted(f for f in records if f not in got and f < first_back)
    assert missing, "the broker was down for a second (5 frames): frames must be missing"
    # only frames captured while the broker was down (the record's timestamp is the
    # capture time on the same monotonic clock); 0.5 s for frames in flight at the kill
    assert all(killed_at - 0.5 <= records[f]["timestamp"] for f in missing), missing
    assert missing == list(range(missing[0], missing[-1] + 1))  # one gap, nothing lost after
    assert max(f for f in records if f in got) >= first_back + 9
    assert all(f in got for f in records if first_back <= f <= max(got))
    warnings = [line for line in err.splitlines() if spec in line and "WARNING" in line]
    assert len(warnings) == 1, err
    sub.close()
