"""Run the real CLIs in subprocesses against bad inputs and faults, and check what they
leave behind: exit code, exactly one stderr line, no traceback, the state of every file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO, SHARED

CLIS = {"edgepose": "edgepose.cli.main", "edgepose-run": "edgepose.cli.run",
        "edgepose-tools": "tools.cli"}
Setup = Callable[[Path], None]
Check = Callable[[Path], None]


@dataclass
class Case:
    """One bad input or fault: ``argv[0]`` names the CLI; ``{tmp}``, ``{shared}`` and
    ``{video}`` in the arguments are filled in. ``stdout`` redirects the CLI's stdout
    (e.g. to /dev/full); ``setup`` prepares ``tmp``; ``check`` inspects it afterwards."""

    id: str
    argv: list[str]
    code: int
    match: str
    setup: Setup | None = None
    check: Check | None = None
    stdout: str | None = None
    needs: tuple[str, ...] = ()  # files under ../shared the case reads
    env: dict[str, str] = field(default_factory=dict)


def fill(arg: str, tmp: Path) -> str:
    return (arg.replace("{tmp}", str(tmp)).replace("{shared}", str(SHARED))
            .replace("{video}", str(SHARED / "videos" / "mmpose_demo.mp4")))


def run_case(case: Case, tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cli, *args = case.argv
    cmd = [sys.executable, "-m", CLIS[cli], *(fill(a, tmp) for a in args)]
    env = {**os.environ, **{k: fill(v, tmp) for k, v in case.env.items()}}
    out = open(case.stdout, "w") if case.stdout else subprocess.PIPE  # noqa: SIM115
    try:
        return subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, env=env)
    finally:
        if case.stdout:
            out.close()  # type: ignore[union-attr]


def assert_one_line(case: Case, proc: subprocess.CompletedProcess[str]) -> str:
    err = proc.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == case.code, f"exit {proc.returncode}, wanted {case.code}: {err}"
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert len(lines) == 1, f"{len(lines)} stderr lines:\n{err}"
    assert re.search(case.match, lines[0]), lines[0]
    return lines[0]


def mount_tmpfs(path: Path, size: str = "64k", readonly: bool = False) -> bool:
    """A small real file system (we are root in CI); False where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


# ---- other writers of a file, and what a case leaves running -------------------------

_LEFT: list[Callable[[], None]] = []  # how to stop what setups started; release() runs them


def hold_output(path: Path) -> None:
    """Another process writing ``path`` through the real output (its locks) until the
    test ends (``release``: killed and reaped, so no process outlives its test)."""
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from edgepose.outputs.jsonl import JsonLinesOutput as J;"
         f"o = J({str(path)!r}); o.open(); print('ok', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    _LEFT.append(lambda: (proc.kill(), proc.wait(), proc.stdout and proc.stdout.close()))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"


def on_release(stop: Callable[[], object]) -> None:
    """Run ``stop`` when the test ends (a server a setup started)."""
    _LEFT.append(stop)


def release() -> None:
    """Stop everything the setups started, newest first."""
    while _LEFT:
        _LEFT.pop()()

