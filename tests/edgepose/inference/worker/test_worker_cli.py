"""``edgepose-run`` with its inference worker against the failures of the field: a
libedgetpu that segfaults or hangs inside ``tflite_plugin_create_delegate`` (the fake
``libedgetpu.so.1`` of tests/fakes), a worker killed or crashing mid-run, an Edge TPU
that comes back, and systemd stopping the whole control group."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path
from tests.edgepose.inference.worker.conftest import gone, wait_for, workers
from tests.fakes.libedgetpu import FakeLibedgetpu

RUN = [sys.executable, "-m", "edgepose.cli.run"]
VIDEO = ("videos", "sports2d_demo.mp4")  # 230 frames, 1768x994


def _records(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


NO_TPU = "WARNING edgepose.inference.worker: no Edge TPU (Edge TPU runtime libedgetpu.so.1 could not be loaded"


def _problems(stderr: str) -> list[str]:
    """The log lines that are not INFO (warnings, errors, tracebacks), but for the
    warning that a machine without libedgetpu (this one) gets with --device auto."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith("INFO ") and not line.startswith(NO_TPU)]


# The fake libedgetpu's modes and what the worker's log line says of them.
DELEGATE_FAILURES = [("segv", "killed by SIGSEGV (segmentation fault)"),
                     ("hang", "no answer within 5 s (hung)")]


def _lines_so_far(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


@pytest.mark.parametrize("mode, what", DELEGATE_FAILURES)
def test_auto_runs_every_frame_on_the_cpu_when_the_delegate_crashes_or_hangs(
        tmp_path: Path, fake_libedgetpu: FakeLibedgetpu, mode: str, what: str) -> None:
    video, out = shared_path(*VIDEO), tmp_path / "out.jsonl"
    proc = subprocess.run(RUN + ["--device", "auto", "--model", "movenet-lightning-edgetpu",
                                 "--source", str(video), "--display", "none", "--json", str(out)],
                          cwd=REPO, env=fake_libedgetpu.env(mode), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    recs = _records(out)
    assert [r["frame"] for r in recs] == list(range(230))
    assert {r["device"] for r in recs} == {"cpu"}
    assert sum(len(r["poses"]) for r in recs) > 200
    problems = _problems(proc.stderr)
    assert len(problems) == 1, problems  # background retries of the Edge TPU stay quiet
    assert re.match(rf"WARNING edgepose.inference.worker: Edge TPU worker \(pid \d+\) {re.escape(what)} while "
                    "creating the Edge TPU delegate for movenet-lightning-edgetpu; likely cause: ",
                    problems[0]), problems[0]
    assert "runtime pairing" in problems[0]
    assert problems[0].endswith("running movenet-lightning on the CPU, retrying the Edge TPU in the "
                                "background")


@pytest.mark.parametrize("mode, what", DELEGATE_FAILURES)
def test_device_edgetpu_exits_within_10_s_with_one_line(
        tmp_path: Path, fake_libedgetpu: FakeLibedgetpu, mode: str, what: str) -> None:
    video, out = shared_path(*VIDEO), tmp_path / "out.jsonl"
    t0 = time.monotonic()
    proc = subprocess.run(RUN + ["--device", "edgetpu", "--model", "movenet-lightning-edgetpu",
                                 "--source", str(video), "--display", "none", "--json", str(out)],
                          cwd=REPO, env=fake_libedgetpu.env(mode), capture_output=True, text=True,
                          timeout=60)
    wall = time.monotonic() - t0
    assert proc.returncode != 0
    assert wall < 10.0, f"took {wall:.1f} s"
    problems = _problems(proc.stderr)
    assert len(problems) == 1, problems
    assert problems[0].startswith("edgepose-run: error: Edge TPU worker (pid ")
    assert what in problems[0] and "likely cause: " in problems[0]
    assert not out.exists()  # no output was opened for a run that never started


DEFAULT_MODELS = ("posenet-mobilenet-v1-075-481x641", "movenet-lightning")  # movenet-multipose-fast's
FAST = ["--model", "movenet-multipose-fast"]  # the default would first try to download Thunder


def test_sigkill_of_the_worker_mid_run_loses_no_frame(tmp_path: Path) -> None:
    video, out = shared_path(*VIDEO), tmp_path / "out.jsonl"
    frames = 460  # the video twice: time for two kills
    proc = subprocess.Popen(RUN + FAST + ["--source", str(video), "--loop", "--max-frames", str(frames),
                                   "--display", "none", "--json", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []
    try:
        for after in (30, 200):
            wait_for(lambda n=after: _lines_so_far(out) >= n and proc.poll() is None, timeout=120)
            pid = wait_for(lambda: [p for p in workers(proc.pid, "edgepose-cpu") if p not in killed],
                           timeout=60)[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    recs = _records(out)
    assert [r["frame"] for r in recs] == list(range(frames))  # none lost, none twice
    assert {r["device"] for r in recs} == {"cpu"}
    restarts = [line for line in _problems(err) if "killed by SIGKILL" in line]
    assert len(restarts) == 2, _problems(err)
    for pid, line in zip(killed, restarts):
        assert line.startswith(f"WARNING edgepose.inference.worker: CPU worker (pid {pid}) killed by SIGKILL")
        # the default model is a pipeline of two models: the kill lands in either's invoke
        assert any(f"while invoking {m};" in line for m in DEFAULT_MODELS) and line.endswith("restarting it")
    assert len(_problems(err)) == 2, _problems(err)


def _standin_manifests(folder: Path) -> Path:
    """A model whose Edge TPU twin is the CPU build itself: with the fake libedgetpu's
    ``inert`` delegate (claims no op) the "Edge TPU" worker really runs it, so a run can
    fail over to the CPU and come back. Both point at the shared MoveNet file."""
    shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")
    common = ('file = "movenet_single_pose_lightning_ptq.tflite"\ninput_size = [192, 192]\n'
              'resize = "letterbox"\ninterpolation = "bilinear"\ndecoder = "movenet"\n'
              'schema = "coco17"\nlicense = "Apache-2.0"\n')
    folder.mkdir()
    (folder / "standin.toml").write_text(
        'name = "movenet-standin"\ndescription = "test stand-in (CPU build)"\ndevice = "cpu"\n'
        'edgetpu_twin = "movenet-standin-edgetpu"\n' + common)
    (folder / "standin-edgetpu.toml").write_text(
        'name = "movenet-standin-edgetpu"\ndescription = "test stand-in (Edge TPU build)"\n'
        'device = "edgetpu"\ncpu_twin = "movenet-standin"\n' + common)
    return folder


def test_auto_fails_over_to_the_cpu_and_moves_back_when_the_edge_tpu_answers(
        tmp_path: Path, fake_libedgetpu: FakeLibedgetpu) -> None:
    video, out = shared_path(*VIDEO), tmp_path / "out.jsonl"
    env = fake_libedgetpu.env("inert")
    env["EDGEPOSE_MANIFEST_PATH"] = str(_standin_manifests(tmp_path / "manifests"))
    frames = 690  # three passes: time to fail over, retry and come back
    proc = subprocess.Popen(RUN + ["--model", "movenet-standin", "--source", str(video), "--loop",
                                   "--max-frames", str(frames), "--display", "none", "--json", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _lines_so_far(out) >= 40, timeout=120)
        tpu = workers(proc.pid, "edgepose-tpu")
        assert len(tpu) == 1 and not workers(proc.pid, "edgepose-cpu")  # one process, one device
        os.kill(tpu[0], signal.SIGSEGV)  # as the runtime crashing mid-invoke
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    recs = _records(out)
    assert [r["frame"] for r in recs] == list(range(frames))
    devices = [r["device"] for r in recs]
    runs = [d for i, d in enumerate(devices) if i == 0 or d != devices[i - 1]]
    assert runs == ["edgetpu", "cpu", "edgetpu"], runs  # the stream never stopped
    problems = _problems(err)
    assert len(problems) == 1, problems
    assert re.match(rf"WARNING edgepose.inference.worker: Edge TPU worker \(pid {tpu[0]}\) killed by SIGSEGV "
                    r"\(segmentation fault\) while invoking movenet-standin-edgetpu; likely cause: "
                    "the accelerator unplugged", problems[0]), problems[0]
    assert problems[0].endswith("running on the CPU meanwhile, retrying the Edge TPU in the background")
    assert "the Edge TPU answers again; movenet-standin-edgetpu back on it" in err


def test_device_edgetpu_exits_1_after_a_few_failed_restarts(
        tmp_path: Path, fake_libedgetpu: FakeLibedgetpu) -> None:
    video, out = shared_path(*VIDEO), tmp_path / "out.jsonl"
    env = fake_libedgetpu.env("inert")
    env["EDGEPOSE_MANIFEST_PATH"] = str(_standin_manifests(tmp_path / "manifests"))
    proc = subprocess.Popen(RUN + ["--model", "movenet-standin", "--device", "edgetpu",
                                   "--source", str(video), "--loop", "--display", "none",
                                   "--json", str(out)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()

    def kill_every_worker() -> None:  # an accelerator that fails again at every restart
        while not stop.wait(0.005):
            for pid in workers(proc.pid, "edgepose-tpu"):
                try:
                    os.kill(pid, signal.SIGSEGV)
                except ProcessLookupError:
                    pass

    killer = threading.Thread(target=kill_every_worker, daemon=True)
    try:
        wait_for(lambda: _lines_so_far(out) >= 20, timeout=120)
        killer.start()
        _, err = proc.communicate(timeout=120)
    finally:
        stop.set()
        proc.kill()
    assert proc.returncode == 1, err
    problems = _problems(err)
    restarts = [line for line in problems if line.startswith("WARNING edgepose.inference.worker: Edge TPU worker")]
    assert len(restarts) == 3 and all("restarting it" in line for line in restarts), problems
    assert problems[-1].startswith("ERROR edgepose.run: runtime failure: Edge TPU worker")
    assert problems[-1].endswith("gave up after 3 restarts"), problems[-1]
    assert len(problems) == 4, problems
    recs = _records(out)  # what was done is complete and in order
    assert [r["frame"] for r in recs] == list(range(len(recs))) and len(recs) >= 20
    assert {r["device"] for r in recs} == {"edgetpu"}


def test_systemd_stopping_the_whole_group_is_a_clean_stop(tmp_path: Path) -> None:
    """systemd's stop signals every process of the service (KillMode=control-group): the
    workers ignore SIGTERM and are closed by edgepose-run, which exits 0 within a second."""
    video, out = shared_path(*VIDEO), tmp_path / "out.jsonl"
    proc = subprocess.Popen(RUN + FAST + ["--source", str(video), "--loop", "--display", "none",
                                          "--json", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_for(lambda: _lines_so_far(out) >= 20, timeout=120)
        worker = workers(proc.pid, "edgepose-cpu")
        assert len(worker) == 1
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    stopped = re.search(r"stopped in (\d+) ms after signal 15", err)
    assert stopped and int(stopped.group(1)) < 1000, err
    assert _problems(err) == [], _problems(err)  # no worker "failure" on the way out
    wait_for(lambda: gone(worker[0]), timeout=10)
    _records(out)  # complete lines only
