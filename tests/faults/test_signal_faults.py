"""Issue 15: SIGINT is handled like SIGTERM in all three CLIs (Ctrl-C to one process
or to the whole group, while starting or mid-work: one line, the documented exit code,
nothing half-written left), and malformed requests to a running ``--serve`` leave the
journal quiet. Real CLIs in subprocesses, real signals, 127.0.0.1 stand-ins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED
from tests.faults.harness import CLIS, fill
from tests.faults.test_output_faults import (
    FETCH_ENV,
    OLD,
    POSENET,
    RUN,
    _cache_empty,
    _fake_compiler,
    _mirror,
    _out_empty,
)

# ---- signals: SIGINT is handled like SIGTERM in all three CLIs ------------------------

def _signal_when(argv: list[str], ready, signum: int, tmp: Path,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cli, *args = argv
    proc = subprocess.Popen([sys.executable, "-m", CLIS[cli], *(fill(a, tmp) for a in args)], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "it ended before the signal"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _one_line(proc: subprocess.CompletedProcess[str], code: int, line: str) -> None:
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, proc.stderr
    assert lines == [line], lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_detect_is_one_line(tmp_path: Path, signum: int) -> None:
    """Sent once the first image's result is printed (the model is loaded, the second
    image is being processed): one line, exit 1, no traceback."""
    images = [str(SHARED / "images" / n) for n in ("ultralytics_bus.jpg",) * 40]
    if not Path(images[0]).is_file():
        pytest.skip("images/ultralytics_bus.jpg not in the shared folder")
    out = tmp_path / "stdout"
    proc = subprocess.Popen([sys.executable, "-m", CLIS["edgepose"], "--log-level", "ERROR", "detect",
                             "--device", "cpu", *images], cwd=REPO, text=True,
                            stdout=open(out, "w"), stderr=subprocess.PIPE,  # noqa: SIM115
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while "pose(s)" not in out.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    name = signal.Signals(signum).name
    _one_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", err), 1,
              f"edgepose: stopped by {name} before it finished")


@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_sigint_while_edgepose_run_starts_is_a_clean_stop(tmp_path: Path, delay: float) -> None:
    """While flags, config and modules load (0.3 s) or the model opens (1 s): exit 0
    like SIGTERM, one line, the old JSON Lines file untouched."""
    (tmp_path / "old.jsonl").write_text(OLD)
    t0 = time.monotonic()
    # --loop: a short video must not end on its own before the signal on a fast machine
    proc = _signal_when(RUN + ["--loop", "--json", str(tmp_path / "old.jsonl")],
                        lambda: time.monotonic() - t0 > delay, signal.SIGINT, tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    if lines:  # none when the signal came after the run started (its stop is INFO)
        assert lines == ["edgepose-run: stopped by SIGINT before it finished"], lines
    assert (tmp_path / "old.jsonl").read_text() == OLD or \
        all(json.loads(line) for line in (tmp_path / "old.jsonl").read_text().splitlines())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_fetch_removes_its_part_file(tmp_path: Path, signum: int) -> None:
    _mirror(tmp_path)
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in FETCH_ENV.items()}
    cache = tmp_path / "cache"
    proc = _signal_when(["edgepose", "models", "fetch", "m-trickle"],
                        lambda: cache.is_dir() and any(cache.glob(".*.part")), signum, tmp_path, env)
    time.sleep(0.5)  # a second after it: nothing more appears either
    _one_line(proc, 1, f"edgepose: stopped by {signal.Signals(signum).name} before it finished")
    _cache_empty(tmp_path)


def test_sigint_during_quantize_is_one_line_and_leaves_no_files(tmp_path: Path) -> None:
    """Sent while TensorFlow converts (after the model is loaded): one line, exit 1, and
    none of the five output files."""
    pytest.importorskip("tensorflow")
    images = SHARED / "data" / "coco17_dev" / "images"
    if not images.is_dir():
        pytest.skip("data/coco17_dev not in the shared folder")
    model = tmp_path / "tiny.keras"
    subprocess.run([sys.executable, "-c", "from tests.tools.tiny_models import heatmap_model; "
                    f"heatmap_model(64).save({str(model)!r})"], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    out = tmp_path / "out"
    out.mkdir()
    scratch = tmp_path / "tmp"  # TensorFlow's converter writes its first temporary folder here
    scratch.mkdir()
    proc = _signal_when(["edgepose-tools", "quantize", str(model), "--representative", str(images),
                         "--samples", "32", "--held-out", "2", "--decoder", "heatmap", "--schema", "coco17",
                         "--no-progress", "--output", str(out / "tiny_int8.tflite")],
                        lambda: any(scratch.iterdir()), signal.SIGINT, tmp_path, {"TMPDIR": str(scratch)})
    _one_line(proc, 1, "edgepose-tools: stopped by SIGINT before it finished")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_compile_kills_the_compiler_and_removes_its_output(tmp_path: Path,
                                                                          signum: int) -> None:
    """The fake compiler (``hang`` mode) has written part of its output and ignores
    SIGTERM, as has its child: both are killed, the partial file removed, one line."""
    if not (SHARED / POSENET).is_file():
        pytest.skip(f"{POSENET} not in the shared folder")
    _fake_compiler(tmp_path)
    pidfile = tmp_path / "child.pid"
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ.get('PATH', '')}", "FAKE_EDGETPU_MODE": "hang",
           "FAKE_EDGETPU_PIDFILE": str(pidfile)}
    proc = _signal_when(["edgepose-tools", "compile", str(SHARED / POSENET), "--out-dir", str(tmp_path / "out")],
                        lambda: pidfile.exists() and any((tmp_path / "out").iterdir()), signum, tmp_path, env)
    _one_line(proc, 1, f"edgepose-tools: stopped by {signal.Signals(signum).name} before it finished")
    _out_empty(tmp_path)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), f"the compiler's child {child} still runs"


def _gone(pid: int) -> bool:
    """Ended (a zombie waiting for its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _children(pid: int) -> list[int]:
    kids = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat_file.parent.name))
    return kids


def test_ctrl_c_to_the_whole_group_while_the_workers_start(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole foreground group: sent as soon as
    edgepose-run has started a helper process (the fork server importing its preload),
    it is still a clean stop: exit 0, at most one line, no traceback from any process."""
    cli, *args = RUN + ["--json", str(tmp_path / "out.jsonl")]
    proc = subprocess.Popen([sys.executable, "-m", CLIS[cli], *(fill(a, tmp_path) for a in args)], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _children(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert lines in ([], ["edgepose-run: stopped by SIGINT before it finished"]), lines


def test_malformed_requests_to_serve_leave_the_journal_quiet(tmp_path: Path) -> None:
    """A running edgepose-run --serve gets a 200 KB header, 5,000 headers, an unknown
    method and a garbage request line, five times each: every one is refused (400), the
    live view keeps answering, and stderr (the journal) stays empty at WARNING level."""
    pytest.importorskip("aiohttp")
    from tests.edgepose.outputs.helpers import free_port
    from tests.edgepose.outputs.serve.test_hostile_clients import HOSTILE, raw

    port = free_port()
    cli, *args = RUN + ["--loop", "--realtime", "--serve", f"127.0.0.1:{port}"]
    proc = subprocess.Popen([sys.executable, "-m", CLIS[cli], *(fill(a, tmp_path) for a in args)], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2).startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        statuses = set()
        for name in ("a 200 KB header", "5,000 headers", "an unknown method", "a garbage request line"):
            for _ in range(5):
                statuses.add(raw(port, HOSTILE[name]).split(b" ")[1:2] == [b"400"])
        alive = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert statuses == {True}
    assert alive.startswith(b"HTTP/1.1 200")
    assert proc.returncode == 0, err
    assert err.strip() == "", err
