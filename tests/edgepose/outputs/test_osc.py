"""OSC output received by python-osc's own UDP server, as a creative tool would."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import pytest

from edgepose.outputs import make_output
from tests.edgepose.outputs.helpers import assert_config_error, real_results, wait_for

osc_server = pytest.importorskip("pythonosc.osc_server", reason="python-osc is not installed (extra net)")
from pythonosc.dispatcher import Dispatcher  # noqa: E402


@pytest.mark.parametrize("spec, message", [
    ("osc://host", "no port"),
    ("osc://:9000", "no host"),
    ("osc://host:9000/my prefix", "prefix"),
    ("osc://host:9000/a*b", "prefix"),
    ("osc://host:nine/x", "port"),
])
def test_bad_urls_are_one_line_config_errors(spec: str, message: str) -> None:
    assert_config_error(spec, message)


@pytest.mark.parametrize("prefix", ["", "/td/body"])
def test_documented_address_scheme(prefix: str) -> None:
    received: list[tuple[str, list[Any]]] = []
    lock = threading.Lock()

    def handler(address: str, *args: Any) -> None:
        with lock:
            received.append((address, list(args)))

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(handler)
    server = osc_server.ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    results = [r for r in real_results(30) if r.record["poses"]][:5]
    assert results, "MoveNet found nobody in the video"
    out = make_output(f"osc://127.0.0.1:{server.server_address[1]}{prefix}")
    out.check()
    out.open()
    try:
        for r in results:
            out.write(r)
            time.sleep(0.08)  # a pace the output keeps up with even on a busy machine
    finally:
        out.close()
    root = prefix or "/edgepose"
    per_frame = 1 + sum(1 + len(p["keypoints"]) for p in results[0].record["poses"])
    wait_for(lambda: len(received) >= per_frame * len(results), 5, "all messages")
    server.shutdown()
    for i, r in enumerate(results):
        rec = r.record
        msgs = received[i * per_frame:(i + 1) * per_frame]  # one bundle per frame, in order
        address, args = msgs[0]
        assert address == f"{root}/frame"
        assert args[:5] == [rec["frame"], pytest.approx(rec["timestamp"], rel=1e-6), len(rec["poses"]),
                            rec["width"], rec["height"]]
        pose = rec["poses"][0]
        assert msgs[1] == (f"{root}/pose/0", [pytest.approx(pose["score"], rel=1e-6), -1])
        for kp, (address, args) in zip(pose["keypoints"], msgs[2:]):
            assert address == f"{root}/pose/0/{kp['name']}"
            assert args == [pytest.approx(kp["x"] / rec["width"], rel=1e-5),
                            pytest.approx(kp["y"] / rec["height"], rel=1e-5),
                            pytest.approx(kp["score"], rel=1e-5)]
            assert 0.0 <= args[0] <= 1.0 and 0.0 <= args[1] <= 1.0
    assert out.written == len(results)


def test_a_tracked_pose_carries_its_track_id() -> None:
    from edgepose.outputs.osc import osc_messages

    record = copy.deepcopy(next(r.record for r in real_results(30) if r.record["poses"]))
    record["poses"][0]["track_id"] = 7
    messages = osc_messages(record, "/td")
    assert messages[1] == ("/td/pose/0", [pytest.approx(record["poses"][0]["score"]), 7])
    assert messages[0][1][5] == pytest.approx(record["latency_ms"])
