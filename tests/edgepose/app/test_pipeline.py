"""The pipeline on real sources and real models (CPU): freshness, drops, stop, mirror."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgepose.app.pipeline import Pipeline
from edgepose.core.errors import SourceError
from edgepose.core.latest import LatestBox
from edgepose.estimators.base import SingleModelEstimator
from edgepose.outputs.base import FrameResult, Output
from edgepose.outputs.jsonl import JsonLinesOutput
from edgepose.sources import ImageSource, OpenCVSource, open_source
from edgepose.sources.base import Frame
from tests.conftest import load_rgb, shared_path

POSENET = "posenet-mobilenet-v1-075-481x641"


def _frame(i: int) -> Frame:
    return Frame(np.full((4, 4, 3), i, np.uint8), time.monotonic(), i)


def test_latest_frame_box_keeps_only_the_newest() -> None:
    box: LatestBox[Frame] = LatestBox()
    for i in range(3):
        assert box.put(_frame(i))
    got = box.take(timeout=0.01)
    assert got is not None and got.index == 2
    assert box.dropped == 2
    assert box.take(timeout=0.01) is None  # empty again: never a queue


def test_blocking_put_waits_for_the_slot_and_loses_nothing() -> None:
    box: LatestBox[Frame] = LatestBox()
    taken: list[int] = []

    def consume() -> None:
        while True:
            f = box.take(timeout=1.0)
            if f is None:
                return
            taken.append(f.index)
            time.sleep(0.002)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(20):
        box.put(_frame(i), block=True)
    box.finish()
    t.join(2.0)
    assert taken == list(range(20)) and box.dropped == 0
    box.close()
    assert box.put(_frame(99), block=True) is False  # consumer gone: producer not stuck


@pytest.fixture
def posenet():
    from edgepose.inference.engine import open_engine

    with open_engine(POSENET, "cpu") as engine:
        yield SingleModelEstimator(engine)


def test_fast_live_source_is_not_backlogged_and_drops_are_counted(posenet) -> None:
    squat = shared_path("images", "coral_squat.bmp")
    # 500 fps, "live": far faster than PoseNet 481x641 inference on this CPU
    source = ImageSource(squat, loop=True, fps=500, realtime=True)
    with source:
        pipe = Pipeline(source, posenet, max_frames=25)
        stats = pipe.run()
    assert stats.processed == 25
    assert stats.dropped > stats.processed  # most frames were never waited for
    assert stats.captured >= stats.processed + stats.dropped
    ages = list(pipe.samples["capture_age_ms"])
    infer_ms = np.median(pipe.samples["invoke_ms"])
    # With a queue, the age would grow by about one inference time per frame; the
    # 1-slot box keeps every frame's age below one frame period plus scheduling noise.
    assert max(ages[1:]) < 100.0, ages  # the first one pays one-time imports (cv2)
    assert np.median(ages[-10:]) < np.median(ages[:10]) + infer_ms
    assert stats.medians["latency_ms"] >= stats.medians["invoke_ms"]


def test_video_file_processes_every_frame_in_order(posenet, tmp_path: Path) -> None:
    video = shared_path("videos", "mmpose_demo.mp4")
    out = tmp_path / "poses.jsonl"
    sink = JsonLinesOutput(str(out))
    sink.check()
    sink.open()
    with open_source(str(video)) as source:
        stats = Pipeline(source, posenet, outputs=[sink], pose_threshold=0.2).run()
    sink.close()
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats.processed == 5 and stats.dropped == 0
    assert [r["frame"] for r in recs] == [0, 1, 2, 3, 4]
    assert max(len(r["poses"]) for r in recs) > 1  # several people in the clip
    assert all(p["score"] >= 0.2 for r in recs for p in r["poses"])


def test_mirror_flips_the_frame_before_inference(posenet) -> None:
    squat = shared_path("images", "coral_squat.bmp")
    image = load_rgb(squat)
    h, w = image.shape[:2]
    results: dict[bool, list[dict]] = {}
    for mirror in (False, True):
        with ImageSource(squat) as source:
            sink = _ListOutput()
            Pipeline(source, posenet, outputs=[sink], mirror=mirror, pose_threshold=0.3).run()
        results[mirror] = sink.records[0]["poses"]
    expected = posenet.estimate(np.ascontiguousarray(image[:, ::-1])).poses.above(0.3)
    mirrored = results[True]
    assert len(mirrored) == len(expected) >= 1
    xs = np.array([[k["x"] for k in p["keypoints"]] for p in mirrored])
    np.testing.assert_allclose(xs, expected.xy[..., 0], atol=0.01)
    # the person moves to the other side of the frame
    x_plain = np.mean([k["x"] for k in results[False][0]["keypoints"] if k["score"] > 0.3])
    x_mirr = np.mean([k["x"] for k in mirrored[0]["keypoints"] if k["score"] > 0.3])
    assert x_mirr == pytest.approx(w - x_plain, abs=0.05 * w)
    assert h > 0


class _ListOutput(Output):
    def __init__(self) -> None:
        super().__init__("list")
        self.records: list[dict] = []

    def open(self) -> None:
        pass

    def write(self, result: FrameResult) -> None:
        self.records.append(result.record)

    def close(self) -> None:
        pass


def test_stop_from_another_thread_returns_within_a_second(posenet) -> None:
    video = shared_path("videos", "sports2d_demo.mp4")
    with open_source(str(video), loop=True, realtime=True) as source:
        pipe = Pipeline(source, posenet)
        threading.Timer(0.5, pipe.stop).start()
        t0 = time.monotonic()
        stats = pipe.run()
        stopped = time.monotonic()
    assert pipe.stop_requested_at is not None
    assert stopped - pipe.stop_requested_at < 1.0
    assert stats.processed > 0 and stopped - t0 < 3.0


def test_a_failing_camera_ends_the_run_with_its_error(posenet) -> None:
    video = shared_path("videos", "mmpose_demo.mp4")
    # a webcam (live, no reconnect wrapper) that stops after the clip's 5 frames
    with OpenCVSource(str(video), live=True) as source:
        pipe = Pipeline(source, posenet)
        with pytest.raises(SourceError, match="stopped delivering frames"):
            pipe.run()
    assert pipe.stats.captured == 5


def test_overlay_shows_fps_inference_and_pose_count(posenet) -> None:
    with ImageSource(shared_path("images", "posenet_test_couple.jpg"), loop=True) as source:
        pipe = Pipeline(source, posenet, max_frames=3, pose_threshold=0.2)
        pipe.run()
    poses = posenet.estimate(load_rgb(shared_path("images", "posenet_test_couple.jpg"))).poses.above(0.2)
    text = pipe.overlay(poses)
    assert set(text) == {"FPS", "inference", "device", "poses"} and text["device"] == "cpu"
    assert text["poses"] == str(len(poses)) and text["inference"].endswith(" ms")
    assert float(text["FPS"]) > 0
