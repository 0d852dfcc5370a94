"""What file outputs share (``edgepose.outputs.files``, ``edgepose.outputs.lock``): what
a path really writes to, and who holds a file's lock, read from the kernel."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from edgepose.outputs.files import destination
from edgepose.outputs.lock import flock_holder


@contextlib.contextmanager
def stdout_pipe() -> Iterator[int]:
    """This process's stdout (fd 1) made a pipe while it lasts (inside the test: pytest
    puts its capture file back on fd 1 between a fixture and the test); yields the pipe's
    write end by another number."""
    r, w = os.pipe()
    saved = os.dup(1)
    os.dup2(w, 1)
    try:
        yield w
    finally:
        os.dup2(saved, 1)
        for fd in (saved, r, w):
            os.close(fd)


def test_stdout_by_any_name_is_one_destination() -> None:
    assert destination(None) == ("stdout",)
    with stdout_pipe() as w:
        names = ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1", f"/proc/self/fd/{w}", f"/proc/{os.getpid()}/fd/1")
        found = {name: destination(Path(name)) for name in names}
    assert found == dict.fromkeys(names, ("stdout",))


def test_other_pipes_and_devices_are_shared_freely() -> None:
    r, w = os.pipe()
    with stdout_pipe():
        other = destination(Path(f"/proc/self/fd/{w}"))  # a pipe, not stdout
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 1)  # stdout is /dev/null now: a device, which any number may share
        os.close(null)
        dev_null = [destination(Path(n)) for n in ("/dev/null", f"/proc/{os.getpid()}/fd/1")]
    for fd in (r, w):
        os.close(fd)
    assert other is None and dev_null == [None, None]


def test_files_by_inode_and_new_files_by_path(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("")
    os.link(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").symlink_to(tmp_path / "a.jsonl")
    st = (tmp_path / "a.jsonl").stat()
    kinds = {destination(tmp_path / n) for n in ("a.jsonl", "b.jsonl", "c.jsonl")}
    assert kinds == {("file", st.st_dev, st.st_ino)}
    (tmp_path / "d").symlink_to(tmp_path)
    new = {destination(tmp_path / "new.jsonl"), destination(tmp_path / "d" / "new.jsonl")}
    assert new == {("path", str((tmp_path / "new.jsonl").resolve()))}
    assert destination(tmp_path / "other.jsonl") not in new | kinds | {("stdout",), None}


def test_the_flock_holder_is_found_by_the_files_device_and_inode(tmp_path: Path) -> None:
    """A child process holds a flock on one file, this process on another: each file
    names its own holder; a file nobody locks names nobody."""
    held, mine, free = (tmp_path / n for n in ("held", "mine", "free"))
    for p in (held, mine, free):
        p.write_text("")
    child = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]);"
         "fcntl.flock(f, fcntl.LOCK_EX); print('ok', flush=True); time.sleep(60)", str(held)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ok"
        with open(mine) as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            assert flock_holder(held.stat()) == str(child.pid)
            assert flock_holder(mine.stat()) == str(os.getpid())
            assert flock_holder(free.stat()) == "unknown"
    finally:
        child.kill()
        child.wait()
        child.stdout and child.stdout.close()
