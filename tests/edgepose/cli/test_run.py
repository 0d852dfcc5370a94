"""``edgepose-run`` end to end on real videos (CPU), signals, sd_notify and bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgepose.cli.run import main
from tests.conftest import REPO, shared_path
from tests.edgepose.inference.worker.conftest import wait_for, workers

RUN = [sys.executable, "-m", "edgepose.cli.run"]


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(RUN + args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _records(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _check_keypoints(recs: list[dict], width: int, height: int) -> None:
    """17 keypoints per pose, in source pixels: confident ones on the frame (a margin of
    5% for joints extrapolated just past the border, e.g. an ankle cut off at the
    bottom, or a hip in the padding of a crop reaching past the edge), and spread over
    the source size rather than the model input's."""
    mx, my = 0.05 * width, 0.05 * height
    xs, ys = [], []
    for r in recs:
        assert (r["width"], r["height"]) == (width, height)
        for pose in r["poses"]:
            assert len(pose["keypoints"]) == 17
            for kp in pose["keypoints"]:
                if kp["score"] >= 0.3:
                    assert -mx <= kp["x"] < width + mx and -my <= kp["y"] < height + my, kp
                    xs.append(kp["x"])
                    ys.append(kp["y"])
    assert max(xs) - min(xs) > 0.3 * width and max(ys) - min(ys) > 0.3 * height


def test_movenet_processes_the_whole_video(tmp_path: Path) -> None:
    video = shared_path("videos", "sports2d_demo.mp4")  # 230 frames, 1768x994
    out = tmp_path / "out.jsonl"
    proc = _run(["--source", str(video), "--model", "movenet-lightning", "--display", "none",
                 "--json", str(out)])
    assert proc.returncode == 0, proc.stderr
    recs = _records(out)
    assert [r["frame"] for r in recs] == list(range(230))
    assert sum(len(r["poses"]) for r in recs) > 200  # the runner is found in most frames
    _check_keypoints(recs, 1768, 994)
    assert all(r["latency_ms"] > 0 for r in recs)


def test_posenet_finds_several_people(tmp_path: Path) -> None:
    video = shared_path("videos", "mmpose_demo.mp4")  # 5 frames, 960x540
    out = tmp_path / "out.jsonl"
    proc = _run(["--source", str(video), "--model", "posenet-mobilenet-v1-075-481x641",
                 "--display", "none", "--json", str(out), "--device", "cpu"])
    assert proc.returncode == 0, proc.stderr
    recs = _records(out)
    assert len(recs) == 5
    assert max(len(r["poses"]) for r in recs) > 1
    _check_keypoints(recs, 960, 540)


def test_max_frames_and_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    video = shared_path("videos", "sports2d_demo.mp4")
    rc = main(["--source", str(video), "--display", "none", "--json", "-", "--max-frames", "3",
               "--log-level", "warning", "--device", "cpu"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert [json.loads(line)["frame"] for line in out] == [0, 1, 2]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_stop_within_a_second_and_leave_complete_outputs(tmp_path: Path, signum: int) -> None:
    cv2 = pytest.importorskip("cv2")
    video = shared_path("videos", "sports2d_demo.mp4")
    out, mp4 = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    proc = subprocess.Popen(
        RUN + ["--source", str(video), "--loop", "--realtime", "--display", "none",
               "--json", str(out), "--record", str(mp4), "--log-level", "INFO"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert notify.recv(4096).startswith(b"READY=1")
        deadline = time.monotonic() + 30
        while (not out.exists() or out.read_text().count("\n") < 10) and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
        wall = time.monotonic() - t0
    finally:
        proc.kill()
        notify.close()
    assert proc.returncode == 0, err
    stopped = re.search(rf"stopped in (\d+) ms after signal {int(signum)}", err)
    assert stopped, err
    assert int(stopped.group(1)) < 1000  # the daemon's own measure, resources released
    assert wall < 3.0                    # includes interpreter shutdown on a busy machine
    recs = _records(out)                 # every line, the last included, is complete JSON
    assert len(recs) >= 10
    cap = cv2.VideoCapture(str(mp4))
    assert cap.isOpened()
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert 0 < n <= len(recs) + 1  # results the screen could not keep up with are skipped


def test_json_to_a_pipe_closed_early_stops_cleanly() -> None:
    """`edgepose-run --json - | head -2`: exit 0 once the reader leaves, no traceback."""
    video = shared_path("videos", "sports2d_demo.mp4")
    proc = subprocess.Popen(RUN + ["--source", str(video), "--display", "none", "--json", "-",
                                   "--device", "cpu"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader goes away mid-run
        err = proc.stderr.read()
        rc = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert json.loads(first)["frame"] == 0
    assert rc == 0, err
    assert "went away" in err and "Traceback" not in err and "Broken pipe" not in err, err


def test_a_bad_image_in_a_folder_is_skipped_with_a_warning(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a.bmp").symlink_to(shared_path("images", "coral_squat.bmp"))
    (tmp_path / "b.jpg").write_bytes(b"not really a jpeg")
    (tmp_path / "c.bmp").symlink_to(shared_path("images", "coral_squat.bmp"))
    out = tmp_path / "out.jsonl"
    rc = main(["--source", str(tmp_path), "--display", "none", "--device", "cpu",
               "--json", str(out)])
    assert rc == 0
    assert "skipped a bad image" in caplog.text and "b.jpg is not a readable image" in caplog.text
    records = _records(out)
    assert [r["file"] for r in records] == ["a.bmp", "b.jpg", "c.bmp"]  # the next images went on
    assert "error" not in records[0] and "b.jpg is not a readable image" in records[1]["error"]
    assert records[1]["poses"] == [] and len(records[2]["poses"]) == 1


def _write(tmp_path: Path, text: str | bytes) -> str:
    p = tmp_path / "edgepose.toml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


VIDEO = "<video>"


@pytest.mark.parametrize("args, toml, match", [
    (["--display", "hdmi"], None, r"argument --display: invalid choice: 'hdmi'"),
    (["--config", "<toml>"], 'display = "hdmi"\n', r"display 'hdmi' is unknown"),
    (["--keypoint-threshold", "-0.5"], None, r"keypoint_threshold -0.5 is out of range"),
    (["--config", "<toml>"], "pose_threshold = -1\n", r"pose_threshold -1 is out of range"),
    (["--source", "missing.mp4"], None, r"source file missing.mp4 not found"),
    (["--config", "<toml>"], b"model = \"x\n", r"is not valid TOML"),
    (["--config", "<toml>"], b"\xff\xfe\x00", r"is not valid TOML"),
    (["--config", "no-such.toml"], None, r"config file no-such.toml not found"),
    (["--config", "<toml>"], "colour = \"red\"\n", r"unknown key 'colour'"),
    (["--model", "openpose-xl"], None, r"unknown model 'openpose-xl'"),
    (["--device", "tpu9"], None, r"unknown device 'tpu9'"),
    (["--fps", "fast"], None, r"argument --fps: invalid float value: 'fast'"),
    (["--fps", "nan"], None, r"fps nan is out of range"),
    (["--device", "usb:abc"], None, r"unknown device 'usb:abc'"),
    (["--source", "<tmp>/bad.jpg"], None, r"bad.jpg is not a readable image"),
    (["--display", "none", "--record", "/proc/edgepose.mp4"], None, r"cannot write into /proc"),
    (["--display", "none", "--record", "<tmp>"], None, r"expected a \.mp4 file name"),
])
def test_bad_config_and_flags_are_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        toml: str | bytes | None, match: str) -> None:
    video = str(shared_path("videos", "mmpose_demo.mp4"))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    argv = ["--source", video, "--max-frames", "1"]
    argv += [_write(tmp_path, toml) if a == "<toml>" else a.replace("<tmp>", str(tmp_path))
             for a in args]
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        rc = exit_.code
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("edgepose-run: error: "), err
    assert re.search(match, err), err


def test_track_and_smooth_give_stable_track_ids(tmp_path: Path) -> None:
    video = shared_path("videos", "mmpose_demo.mp4")
    out = tmp_path / "out.jsonl"
    rc = main(["--source", str(video), "--model", "posenet-mobilenet-v1-075-481x641",
               "--device", "cpu", "--display", "none", "--json", str(out), "--track",
               "--smooth", "--pose-threshold", "0.3"])
    assert rc == 0
    recs = _records(out)
    ids = [{p["track_id"] for p in r["poses"]} for r in recs]
    assert all(len(s) == len(r["poses"]) for s, r in zip(ids, recs))  # unique per frame
    # the people of the first frame are still followed in the next one
    assert len(ids[0] & ids[1]) >= 1


def _sink_class(made: list[Any]) -> Any:
    """A third party's output (the outputs tests' ``Plugin``), defined when needed (this
    module imports no output code); each one made is appended to ``made`` and keeps the
    record lines it is fed."""
    from edgepose.outputs.base import FrameResult
    from edgepose.outputs.records import record_text
    from tests.edgepose.outputs.test_registry import Plugin

    class Sink(Plugin):
        def __init__(self, spec: str, **options: Any) -> None:
            super().__init__(spec, **options)
            self.lines: list[str] = []
            made.append(self)

        def write(self, result: FrameResult) -> None:
            self.lines.append(record_text(result.record) + "\n")
            super().write(result)

    return Sink


def test_a_registered_plugin_is_an_output_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """``register_output("sink", factory)``: ``--output sink://...`` is made by it, checked,
    told the source's frame rate, opened, fed every frame's record (the --json lines, byte
    for byte), closed and summed up, like the built-ins."""
    import edgepose.outputs as registry

    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_SPEC_KINDS", dict(registry._SPEC_KINDS))
    made: list[Any] = []
    registry.register_output("sink", _sink_class(made))
    video = shared_path("videos", "mmpose_demo.mp4")  # 5 frames at 5 frames/s
    out = tmp_path / "out.jsonl"
    rc = main(["--source", str(video), "--display", "none", "--device", "cpu", "--json", str(out),
               "--output", "sink://anywhere/poses", "--keypoint-threshold", "0.4",
               "--log-level", "INFO"])
    assert rc == 0
    [sink] = made
    assert sink.options == {"flag": "--output", "keypoint_threshold": 0.4}
    assert sink.events == ["check", "fps 5", "open", "close"]
    assert "".join(sink.lines) == out.read_text() and len(sink.lines) == 5
    assert "output sink://anywhere/poses: 5 frame(s)" in caplog.messages


# --- the watchdog means progress ---------------------------------------------------------

class _NotifyListener:
    """A NOTIFY_SOCKET stand-in that timestamps every datagram as it arrives."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.path = path
        self.messages: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data))

    def pings(self, start: float = 0.0, end: float = float("inf")) -> list[float]:
        return [t for t, m in self.messages if m == b"WATCHDOG=1" and start <= t < end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


WATCHDOG_ENV = {"WATCHDOG_USEC": "400000"}  # a ping every 0.2 s while frames flow


def _watched_run(tmp_path: Path, args: list[str]) -> tuple[subprocess.Popen[str], _NotifyListener]:
    listener = _NotifyListener(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), **WATCHDOG_ENV}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(RUN + args + ["--display", "none", "--log-level", "INFO"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, listener


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return err


def test_no_watchdog_ping_once_an_http_camera_stalls(tmp_path: Path) -> None:
    from tests.edgepose.sources.test_streams import StallingServer

    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(shared_path("videos", "sports2d_demo.mp4")))
    frames = [cv2.imencode(".jpg", cv2.resize(cap.read()[1], (640, 360)))[1].tobytes()
              for _ in range(20)]
    cap.release()
    camera = StallingServer(frames, fps=15.0)  # 20 real frames, then silence, connection open
    out = tmp_path / "out.jsonl"
    proc, listener = _watched_run(tmp_path, ["--source", camera.url, "--json", str(out),
                                             "--device", "cpu"])
    try:
        assert camera.sent_all.wait(120), "the camera was never read to the end"
        stalled = time.monotonic()
        time.sleep(4.0)  # the camera stays silent
        quiet_from = stalled + 1.0  # the last frames still in the pipeline
        after = listener.pings(quiet_from)
        before = listener.pings(0.0, stalled)
        err = _stop(proc)
    finally:
        proc.kill()
        camera.close()
        listener.close()
    assert len(before) >= 3, (before, err)  # pings while frames flowed...
    assert after == [], (after, quiet_from)  # ...and none once they stopped
    assert any(m.startswith(b"READY=1") for _, m in listener.messages)
    assert out.read_text().count("\n") >= 5


def test_no_watchdog_ping_while_the_worker_is_stalled(tmp_path: Path) -> None:
    video = shared_path("videos", "sports2d_demo.mp4")
    out = tmp_path / "out.jsonl"
    # a long invoke deadline: the stall lasts as long as the test wants
    proc, listener = _watched_run(tmp_path, ["--source", str(video), "--loop", "--json", str(out),
                                             "--device", "cpu", "--invoke-timeout", "60"])
    try:
        wait_for(lambda: out.exists() and out.read_text().count("\n") >= 20, timeout=120)
        worker = wait_for(lambda: workers(proc.pid, "edgepose-cpu"), timeout=30)[0]
        os.kill(worker, signal.SIGSTOP)  # the runtime stops answering
        stalled = time.monotonic()
        time.sleep(3.0)
        during = listener.pings(stalled + 0.5, time.monotonic())
        resumed = time.monotonic()
        os.kill(worker, signal.SIGCONT)
        time.sleep(2.0)
        after = listener.pings(resumed)
        err = _stop(proc)
    finally:
        proc.kill()
        listener.close()
    assert listener.pings(0.0, stalled), err
    assert during == [], during
    assert len(after) >= 3, (after, err)  # frames flow again: so do the pings
    assert proc.returncode == 0, err
