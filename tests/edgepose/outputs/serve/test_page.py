"""The live page in a real headless Chromium: the skeleton is drawn where the decoded
keypoints of the displayed frame are, over the picture, in the schema's colours."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepose.core.schemas import COCO17
from edgepose.outputs.serve import ServeOutput
from tests.edgepose.outputs.helpers import Feeder, free_port, real_results, wait_for
from tests.edgepose.outputs.serve.browser import Browser, color_near, keypoints_on_screen

VIDEO = "pose2sim_singleperson_cam01.mp4"  # an athlete, whole body, MoveNet sees them well

pytest.importorskip("aiohttp", reason="aiohttp is not installed (extra net)")

THRESHOLD = 0.3
CONFIDENT = f"""(() => {{
  const r = window.edgepose && window.edgepose.record;
  if (!r || !r.poses.length || window.edgepose.received < 30) return -1;
  if (r.poses[0].keypoints.filter(k => k.score >= {THRESHOLD}).length < 8) return -1;
  return window.edgepose.pause();
}})()"""


def check_page(url: str, records: dict[int, dict], tmp_path: Path) -> Path:
    """Open ``url``, pause on a frame with a confident pose, and check its keypoints on
    the screenshot against ``records`` (frame -> the record the pipeline made)."""
    browser = Browser(url, tmp_path / "profile", size=(900, 1200))
    try:
        frame = wait_for(lambda: (f := browser.evaluate(CONFIDENT)) is not None and f >= 0 and f + 1,
                         60, "a displayed frame with a confident pose") - 1
        assert browser.evaluate("document.title") == f"edgepose · frame {frame}"
        assert browser.evaluate("document.body.dataset.frame") == str(frame)
        view = browser.evaluate("window.edgepose.view")
        shot = browser.screenshot(tmp_path / "serve.png")
        points = keypoints_on_screen(records[frame], view, THRESHOLD, [list(c) for c in COCO17.keypoint_colors])
        alone = [p for p in points if p[3]]
        assert len(alone) >= 4, points
        for x, y, color, _ in alone:
            assert color_near(shot, x, y, color), (x, y, color, shot[y, x])
        # the picture is under it: the frame is not blank around the skeleton
        assert shot[int(view["y"]):int(view["y"] + view["h"]), int(view["x"]):int(view["x"] + view["w"])].std() > 20
        # control: without the skeleton, those pixels are the picture's, not the dots'
        assert browser.evaluate("window.edgepose.skeleton(false)") == frame
        bare = browser.screenshot(tmp_path / "serve-bare.png")
        matches = sum(color_near(bare, x, y, color) for x, y, color, _ in alone)
        assert matches <= len(alone) // 4, matches
        stats = browser.evaluate("document.getElementById('stats').textContent")
        people = len(records[frame]["poses"])  # the athlete, and someone standing at the back
        for word in ("FPS", "latency", f"people {people}", "device cpu", "invoke", f"frame {frame}"):
            assert word in stats, stats
    finally:
        browser.close()
    return tmp_path / "serve.png"


def test_page_draws_the_skeleton_on_the_keypoints(tmp_path: Path) -> None:
    results = real_results(60, VIDEO)
    records = {r.record["frame"]: r.record for r in results}
    out = ServeOutput(f"127.0.0.1:{free_port()}", keypoint_threshold=THRESHOLD)
    out.open()
    feeder = Feeder(out, results, fps=10)
    try:
        shot = check_page(out.url, records, tmp_path)
    finally:
        feeder.stop()
        out.close()
    print(f"screenshot kept at {shot}")


def test_page_with_a_token(tmp_path: Path) -> None:
    """Beyond loopback the page carries the token to its WebSocket and meta requests."""
    results = real_results(60, VIDEO)
    out = ServeOutput(f"127.0.0.1:{free_port()}", token="auto", keypoint_threshold=THRESHOLD)
    out.open()
    assert "?token=" in out.url and out.token and out.token in out.url
    feeder = Feeder(out, results, fps=10)
    try:
        check_page(out.url, {r.record["frame"]: r.record for r in results}, tmp_path)
    finally:
        feeder.stop()
        out.close()
