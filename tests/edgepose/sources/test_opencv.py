"""OpenCVSource on real videos (and the webcam path standing in for a device); truncated and
damaged copies made from them."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import OpenCVSource, open_source
from tests.conftest import REPO, shared_path

cv2 = pytest.importorskip("cv2")


def _cv2_frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    for _ in range(n):
        ok, bgr = cap.read()
        assert ok
        out.append(bgr)
    cap.release()
    return out



# --- video files and the webcam path (OpenCV) ---------------------------------------

def test_video_file_yields_rgb_frames_with_increasing_index_and_time() -> None:
    path = shared_path("videos", "mmpose_demo.mp4")
    with open_source(str(path)) as src:
        frames = list(src)
    assert not src.is_live and not src.paced
    bgr = _cv2_frames(path, len(frames))
    assert len(frames) == 5  # the clip's frame count
    assert [f.index for f in frames] == list(range(5))
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    for f, ref in zip(frames, bgr):
        assert f.image.dtype == np.uint8 and f.image.shape == ref.shape
        np.testing.assert_array_equal(f.image, ref[..., ::-1])  # RGB, not OpenCV's BGR


def test_video_loop_restarts_at_the_first_frame() -> None:
    path = shared_path("videos", "mmpose_demo.mp4")
    with open_source(str(path), loop=True) as src:
        frames = [src.read() for _ in range(12)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(12))
    np.testing.assert_array_equal(frames[5].image, frames[0].image)
    np.testing.assert_array_equal(frames[11].image, frames[1].image)


def test_realtime_paces_a_video_at_its_frame_rate() -> None:
    path = shared_path("videos", "sports2d_demo.mp4")  # 30 fps
    n = 10
    for realtime in (False, True):
        with open_source(str(path), realtime=realtime) as src:
            t0 = time.monotonic()
            for _ in range(n):
                assert src.read() is not None
            took = time.monotonic() - t0
        if realtime:
            assert src.paced
            assert took >= (n - 1) / 30.0 - 0.01
        else:
            fast = took
    assert fast < took


def test_webcam_path_reads_a_video_file_standing_in_for_the_device() -> None:
    path = shared_path("videos", "mmpose_demo.mp4")
    src = OpenCVSource(str(path), width=960, height=540, fps=5, live=True)
    with src:
        assert src.is_live and src.paced
        frames = [src.read() for _ in range(5)]
        # a webcam that stops delivering frames is a failure, not an end of stream
        with pytest.raises(SourceError, match="stopped delivering frames"):
            src.read()
    ref = _cv2_frames(path, 1)[0]
    np.testing.assert_array_equal(frames[0].image, ref[..., ::-1])


def _decodable(path: Path) -> int:
    """How many frames OpenCV itself decodes from ``path`` (the reference)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _truncated_copy(tmp_path: Path) -> Path:
    """The first 1.5 MB of the 230-frame, 4 MB sports2d clip, as `head -c` would cut it."""
    out = tmp_path / "truncated.mp4"
    with open(out, "wb") as f:
        subprocess.run(["head", "-c", "1500000", str(shared_path("videos", "sports2d_demo.mp4"))],
                       stdout=f, check=True)
    return out


def _damaged_copy(tmp_path: Path) -> Path:
    """The sports2d clip with 200 kB of (seeded) noise written over its middle."""
    data = bytearray(shared_path("videos", "sports2d_demo.mp4").read_bytes())
    noise = random.Random(10).randbytes(200_000)
    data[1_800_000:2_000_000] = noise
    out = tmp_path / "damaged.mp4"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("make", [_truncated_copy, _damaged_copy], ids=["truncated", "damaged"])
def test_a_short_video_raises_after_its_last_good_frame(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    good = _decodable(path)
    assert 0 < good < 230  # what OpenCV decodes of the damaged file
    frames = []
    with open_source(str(path)) as src:
        with pytest.raises(SourceError) as info:
            while (frame := src.read()) is not None:
                frames.append(frame)
    assert len(frames) == good  # every good frame came out before the error
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{path} is truncated or damaged" in msg
    assert f"ended after {good} of the 230 frames" in msg
    assert f"last good frame: frame {good - 1} at {(good - 1) / 30:.2f} s" in msg
    assert "--allow-truncated" in msg


def test_allow_truncated_ends_or_loops_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _truncated_copy(tmp_path)
    good = _decodable(path)
    with caplog.at_level(logging.WARNING, logger="edgepose.sources"):
        with open_source(str(path), allow_truncated=True) as src:
            assert len(list(src)) == good
        assert src.truncated
        with open_source(str(path), allow_truncated=True, loop=True) as src:
            frames = [src.read() for _ in range(2 * good + 3)]  # round the file twice
    assert all(f is not None for f in frames)
    np.testing.assert_array_equal(frames[good].image, frames[0].image)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # one per source, not one per round
    assert all(f"last good frame: frame {good - 1}" in w and "--allow-truncated" in w
               for w in warnings)


def test_a_complete_video_is_not_called_truncated() -> None:
    path = shared_path("videos", "pose2sim_singleperson_cam01.mp4")  # 100 frames, 60 fps
    with open_source(str(path)) as src:
        assert sum(1 for _ in src) == 100
    assert not src.truncated


@pytest.mark.parametrize("allow", [False, True], ids=["refused", "allowed"])
def test_edgepose_run_on_a_truncated_video_names_the_last_good_frame(
        tmp_path: Path, allow: bool) -> None:
    path = _truncated_copy(tmp_path)
    good = _decodable(path)
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "edgepose.cli.run", "--source", str(path),
                           "--display", "none", "--device", "cpu", "--json", str(out),
                           "--model", "movenet-multipose-fast",
                           "--log-level", "WARNING"] + (["--allow-truncated"] if allow else []),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == (0 if allow else 1), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"last good frame: frame {good - 1}" in lines[0], proc.stderr
    assert lines[0].startswith("WARNING" if allow else "ERROR")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(good))  # the frames before, all of them
