"""``edgepose-run --serve`` end to end: the page in headless Chromium shows the skeleton
where the run's own JSON Lines put the keypoints; bad binds are one-line exit-2 errors."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path
from tests.edgepose.outputs.helpers import free_port, wait_for
from tests.edgepose.outputs.serve.test_page import THRESHOLD, VIDEO, check_page

pytest.importorskip("aiohttp", reason="aiohttp is not installed (extra net)")

RUN = [sys.executable, "-m", "edgepose.cli.run"]
DOCS_SHOT = REPO / "docs" / "serve.png"


def records(path: Path) -> dict[int, dict]:
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[rec["frame"]] = rec
    return out


@pytest.mark.parametrize("serve_token", [None, "auto"])
def test_run_serves_the_live_page(tmp_path: Path, serve_token: str | None) -> None:
    video = shared_path("videos", VIDEO)
    jsonl = tmp_path / "poses.jsonl"
    port = free_port()
    args = RUN + ["--source", str(video), "--realtime", "--loop", "--display", "none",
                  "--keypoint-threshold", str(THRESHOLD), "--json", str(jsonl),
                  "--serve", f"127.0.0.1:{port}"]
    if serve_token:
        args += ["--serve-token", serve_token]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        url = None
        for line in proc.stderr:  # the run prints where the page is
            found = re.search(r"live view on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url is not None, "no live view line"
        if serve_token:
            assert "?token=" in url
        wait_for(lambda: jsonl.exists() and jsonl.stat().st_size, 30, "the first records")

        class Records(dict):  # the displayed frame may be newer than the last read
            def __missing__(self, frame: int) -> dict:
                wait_for(lambda: frame in records(jsonl), 10, f"frame {frame} in the JSON Lines")
                return records(jsonl)[frame]

        shot = check_page(url, Records(), tmp_path)
        if serve_token is None and shutil.os.environ.get("EDGEPOSE_UPDATE_DOCS"):
            shutil.copy(shot, DOCS_SHOT)  # EDGEPOSE_UPDATE_DOCS=1 refreshes docs/serve.png
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "serve http://127.0.0.1" in err  # the output's summary at the end


@pytest.mark.parametrize("args", [["--serve", "0.0.0.0:8080"], ["--serve", "[::]:8080"],
                                  ["--serve", "10.1.2.3:9000", "--serve-token", ""]])
def test_beyond_loopback_without_a_token_exits_2_in_one_line(args: list[str]) -> None:
    video = shared_path("videos", VIDEO)
    proc = subprocess.run(RUN + ["--source", str(video), "--display", "none"] + args,
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "needs a token" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
