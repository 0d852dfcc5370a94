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

import pytest

from edgepose.core.errors import ConfigError
from edgepose.outputs.files import check_writable_file, destination
from edgepose.outputs.lock import OutputLock, flock_holder


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


@contextlib.contextmanager
def flocked_by_a_child(path: Path) -> Iterator[int]:
    """``path`` flocked by a child process while it lasts; yields the child's PID."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]);"
         "fcntl.flock(f, fcntl.LOCK_EX); print('ok', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ok"
        yield child.pid
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


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
    with flocked_by_a_child(held) as pid, open(mine) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert flock_holder(held.stat()) == str(pid)
        assert flock_holder(mine.stat()) == str(os.getpid())
        assert flock_holder(free.stat()) == "unknown"


@pytest.mark.parametrize("name, suffixes, message", [
    ("a.avi", (".mp4",), "--out <tmp>/a.avi: expected a .mp4 file name"),
    ("a.avi", (".mp4", ".mkv"), "--out <tmp>/a.avi: expected a .mp4 or .mkv file name"),
    ("dir", (), "--out <tmp>/dir is a directory; pass a file name"),
    ("none/a.jsonl", (), "--out <tmp>/none/a.jsonl: folder <tmp>/none does not exist; create it first"),
])
def test_check_writable_file_says_what_and_the_fix(tmp_path: Path, name: str, suffixes: tuple[str, ...],
                                                   message: str) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError) as info:
        check_writable_file(tmp_path / name, "--out", suffixes)
    assert str(info.value) == message.replace("<tmp>", str(tmp_path))


def test_a_folder_that_takes_no_file_is_named_with_the_reason() -> None:
    with pytest.raises(ConfigError) as info:
        check_writable_file(Path("/proc/self/a.jsonl"), "--out")
    text = str(info.value)
    assert text.startswith("--out /proc/self/a.jsonl: cannot write into /proc/self, it is not writable (")
    assert text.endswith("); pass a writable folder") and "(None)" not in text


def test_check_writable_file_opens_an_existing_file_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text("kept\n")
    check_writable_file(path, "--out", (".jsonl",))
    assert path.read_text() == "kept\n" and sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl"]


def test_the_lock_file_says_who_holds_it_or_unknown(tmp_path: Path) -> None:
    """The lock file is rw-r--r-- and holds its writer's PID; a holder whose PID is not
    on record (a full disk when it wrote it) is "unknown"."""
    path = tmp_path / "out.jsonl"
    old = os.umask(0)
    try:
        lock = OutputLock(path)
        lock.acquire()
    finally:
        os.umask(old)
    lp = tmp_path / ".out.jsonl.lock"
    assert lp.stat().st_mode & 0o777 == 0o644 and lp.read_text() == f"{os.getpid()}\n"
    lock.release()
    assert not lp.exists()
    lp.write_text("")
    with flocked_by_a_child(lp), pytest.raises(ConfigError) as info:
        OutputLock(path).acquire()
    assert str(info.value) == (f"output {path} is being written by another process (PID unknown); "
                               "stop it or pick another file")


def test_a_lock_file_that_cannot_be_made_is_one_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        OutputLock(Path("/proc/self/out.jsonl"), "--json").acquire()
    text = str(info.value)
    assert text.startswith("--json /proc/self/out.jsonl: cannot create its lock file /proc/")
    assert text.endswith("; pass a writable folder")


def test_locking_a_fifo_does_not_block(tmp_path: Path) -> None:
    """A FIFO with no writer: opening it to lock would block without O_NONBLOCK; the
    lock keeps nothing open on a FIFO (a stream), only on a file."""
    import threading

    fifo, plain = tmp_path / "pipe.mp4", tmp_path / "plain.mp4"
    os.mkfifo(fifo)
    plain.write_bytes(b"old")
    locks = [OutputLock(fifo), OutputLock(plain)]
    done = threading.Event()

    def acquire() -> None:
        for lock in locks:
            lock.acquire()
        done.set()

    threading.Thread(target=acquire, daemon=True).start()
    assert done.wait(5), "acquire blocked on the FIFO"
    try:
        kept = [int(fd) for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") in (str(plain), str(fifo),
                                                             str(tmp_path / ".plain.mp4.lock"))]
        assert len(kept) == 2  # the lock file and the file itself; nothing on the FIFO's own inode
    finally:
        for lock in locks:
            lock.release()
