"""The supervisor with real models in real worker processes (CPU): the same outputs as
in-process inference, and a killed, hung or repeatedly failing worker."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import DeviceError
from edgepose.estimators.factory import open_estimator
from edgepose.inference.engine import open_engine
from edgepose.inference.worker import Supervisor, invoke_deadline
from edgepose.inference.worker.shm import Layout
from tests.conftest import REPO, load_rgb, shared_path
from tests.edgepose.inference.worker.conftest import gone, my_workers, wait_for

MOVENET, POSENET = "movenet-lightning", "posenet-mobilenet-v1-075-481x641"


@pytest.fixture
def supervisor():
    sup = Supervisor(num_threads=1)
    yield sup
    sup.close()


@pytest.fixture(scope="module")
def couple() -> np.ndarray:
    return load_rgb(shared_path("images", "posenet_test_couple.jpg"))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("model", [MOVENET, POSENET])
def test_worker_outputs_equal_in_process_outputs(supervisor: Supervisor, couple: np.ndarray,
                                                 model: str) -> None:
    local = open_engine(model, "cpu", num_threads=1)
    remote = supervisor.open_engine(model, "cpu")
    tensor, transform = remote.preprocess(couple)
    got, want = remote.invoke(tensor), local.invoke(local.preprocess(couple)[0])
    assert [(o.name, o.scale, o.zero_point) for o in got] == [(o.name, o.scale, o.zero_point) for o in want]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a.data, b.data)
    poses, ref = remote.decode(got, transform), local.decode(want, transform)
    np.testing.assert_array_equal(poses.xy, ref.xy)
    assert len(poses) >= 1 and (len(poses) > 1) == (model == POSENET)  # two people, one for MoveNet
    assert remote.device == "cpu" and remote.name == local.name
    assert remote.pids["cpu"] in my_workers("edgepose-cpu")


def test_an_estimator_gets_its_engines_from_the_supervisor(supervisor: Supervisor,
                                                           couple: np.ndarray) -> None:
    est = open_estimator(MOVENET, "cpu", opener=supervisor.open_engine)
    ref = open_estimator(MOVENET, "cpu", num_threads=1).estimate(couple)
    got = est.estimate(couple)
    assert got.device == "cpu" and got.invokes == ref.invokes == 2  # a still: whole, then the crop
    np.testing.assert_array_equal(got.poses.xy, ref.poses.xy)
    est.close()


def test_the_models_of_an_estimator_share_one_worker_and_restart_together(
        supervisor: Supervisor, couple: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    """One process per device (one process owns the USB Edge TPU): a second model opens in
    the same worker, and a crash restarts it with both models loaded again."""
    first, second = supervisor.open_engine(MOVENET, "cpu"), supervisor.open_engine(POSENET, "cpu")
    assert first.pids == second.pids and len(my_workers("edgepose-cpu")) == 1
    tensors = [e.preprocess(couple)[0] for e in (first, second)]
    want = [e.invoke(t)[0].data for e, t in zip((first, second), tensors)]
    pid = first.pids["cpu"]
    os.kill(pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING):
        got = [e.invoke(t)[0].data for e, t in zip((second, first), tensors[::-1])][::-1]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert len(_warnings(caplog)) == 1 and "while invoking posenet" in _warnings(caplog)[0]
    assert first.pids == second.pids != {"cpu": pid}
    second.close()  # its model leaves the worker; the other keeps running
    np.testing.assert_array_equal(first.invoke(tensors[0])[0].data, want[0])
    last = first.pids["cpu"]
    first.close()  # no model left: the worker stops
    wait_for(lambda: gone(last), timeout=10)


def test_a_worker_killed_mid_invoke_is_restarted_and_the_frame_retried(
        supervisor: Supervisor, couple: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    eng = supervisor.open_engine(MOVENET, "cpu")
    tensor, _ = eng.preprocess(couple)
    want = eng.invoke(tensor)[0].data
    pid = eng.pids["cpu"]
    os.kill(pid, signal.SIGSTOP)  # so that the kill lands while the frame is in flight
    result: list = []
    call = threading.Thread(target=lambda: result.append(eng.invoke(tensor)))
    with caplog.at_level(logging.WARNING):
        call.start()
        call.join(0.3)
        assert call.is_alive()  # waiting on the stopped worker
        os.kill(pid, signal.SIGKILL)
        call.join(30)
    assert result, "the invoke did not come back"
    np.testing.assert_array_equal(result[0][0].data, want)  # the same frame, run again
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"CPU worker (pid {pid}) killed by SIGKILL")
    assert "while invoking movenet-lightning" in warnings[0] and "out-of-memory" in warnings[0]
    assert warnings[0].endswith("restarting it")
    assert eng.pids["cpu"] != pid and gone(pid)


def test_a_hung_worker_is_killed_at_the_deadline_and_the_frame_retried(
        couple: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    with Supervisor(num_threads=1, invoke_timeout=0.5) as sup:
        eng = sup.open_engine(MOVENET, "cpu")
        tensor, _ = eng.preprocess(couple)
        want = eng.invoke(tensor)[0].data
        pid = eng.pids["cpu"]
        os.kill(pid, signal.SIGSTOP)  # it never answers, as a runtime stuck in a call
        with caplog.at_level(logging.WARNING):
            got = eng.invoke(tensor)[0].data
        np.testing.assert_array_equal(got, want)
        warnings = _warnings(caplog)
        assert len(warnings) == 1, warnings
        assert f"CPU worker (pid {pid}) no answer within 0.5 s (hung) while invoking" in warnings[0]
        assert gone(pid)


def test_a_worker_that_keeps_failing_gives_up_after_max_restarts(
        couple: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()

    def kill_every_worker() -> None:
        while not stop.wait(0.005):
            for pid in my_workers("edgepose-cpu"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    with Supervisor(num_threads=1, max_restarts=2) as sup:
        eng = sup.open_engine(MOVENET, "cpu")
        tensor, _ = eng.preprocess(couple)
        pid = eng.pids["cpu"]
        killer = threading.Thread(target=kill_every_worker, daemon=True)
        killer.start()
        try:
            wait_for(lambda: gone(pid), timeout=10)
            with caplog.at_level(logging.WARNING), pytest.raises(DeviceError) as info:
                eng.invoke(tensor)
        finally:
            stop.set()
            killer.join()
    assert "killed by SIGKILL" in str(info.value) and str(info.value).endswith("gave up after 2 restarts")
    warnings = _warnings(caplog)
    assert len(warnings) == 2 and warnings[0].endswith("restarting it"), warnings
    assert warnings[1].endswith("restarting it in 1 s"), warnings


def test_close_stops_the_workers_and_frees_shared_memory(couple: np.ndarray) -> None:
    mine = f"edgepose-{os.getpid()}-"
    before = {n for n in os.listdir("/dev/shm") if n.startswith(mine)}
    sup = Supervisor(num_threads=1)
    eng = sup.open_engine(POSENET, "cpu")
    eng.invoke(eng.preprocess(couple)[0])
    pid = eng.pids["cpu"]
    blocks = {n for n in os.listdir("/dev/shm") if n.startswith(mine)} - before
    assert len(blocks) == 1  # one slot: the input and the three outputs
    sup.close()
    assert gone(pid)
    assert {n for n in os.listdir("/dev/shm") if n.startswith(mine)} - before == set()
    with pytest.raises(DeviceError, match="closed"):
        eng.invoke(eng.preprocess(couple)[0])


def test_a_hung_worker_dies_with_its_parent(tmp_path: Path) -> None:
    """A runtime stuck in a C call ignores everything; when edgepose-run itself is killed
    (SIGKILL, OOM) its worker must not outlive it, holding the accelerator."""
    shared_path("models")
    code = ("import os, signal, sys\n"
            "from edgepose.inference.worker import Supervisor\n"
            "eng = Supervisor(num_threads=1).open_engine('movenet-lightning', 'cpu')\n"
            "pid = eng.pids['cpu']\n"
            "os.kill(pid, signal.SIGSTOP)\n"
            "print(pid, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    wait_for(lambda: gone(pid), timeout=10)


@pytest.mark.parametrize("samples, first, fixed, expected", [
    ([], True, 0.0, 5.0),              # a worker's first invoke: generous
    ([], False, 0.0, 5.0),             # no median yet (the first is not counted)
    ([], False, 0.5, 0.5),
    ([0.001] * 5, True, 0.0, 5.0),
    ([0.007] * 9, False, 0.0, 2.0),    # Edge TPU MoveNet: ten medians is less than the floor
    ([0.3] * 9, False, 0.0, 3.0),      # ten medians
    ([0.9] * 9, False, 0.0, 4.0),      # capped at a few seconds...
    ([2.0] * 9, False, 0.0, 6.0),      # ...unless the model itself is slower: three medians
    ([0.007, 0.007, 0.5], False, 0.0, 2.0),  # one slow invoke does not move the median
    ([0.007] * 9, False, 0.5, 0.5),    # invoke_timeout set
    ([], True, 8.0, 8.0),
])
def test_invoke_deadline(samples: list[float], first: bool, fixed: float, expected: float) -> None:
    assert invoke_deadline(samples, first=first, fixed=fixed) == pytest.approx(expected)


def test_slot_layout_aligns_every_tensor() -> None:
    details = [{"shape": [1, 481, 641, 3], "dtype": np.uint8},
               {"shape": [1, 31, 41, 17], "dtype": np.uint8},
               {"shape": [1, 1, 17, 3], "dtype": np.float32}]
    layout = Layout.of(details)
    offsets = [t[0] for t in layout.tensors]
    assert all(o % 64 == 0 for o in offsets) and offsets == sorted(offsets)
    buf = bytearray(layout.size)
    views = layout.views(buf)
    assert [v.shape for v in views] == [(1, 481, 641, 3), (1, 31, 41, 17), (1, 1, 17, 3)]
    views[2][...] = 1.5
    views[0][...] = 255  # writing one tensor never touches its neighbours
    assert (views[2] == 1.5).all() and (views[1] == 0).all()
