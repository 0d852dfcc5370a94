"""edgepose.core.limits: the one check of "a regular file of a sane size", as models, configs
and file sources use it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from edgepose.core.errors import ConfigError, ModelError, SourceError
from edgepose.core.limits import MAX_MODEL_BYTES, check_file, file_kind, read_bounded
from edgepose.models.registry import resolve_model
from edgepose.models.tflite_info import read_model_bytes
from edgepose.sources.spec import parse_source


def test_kinds_are_named(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        kinds = {name: file_kind(os.stat(tmp_path / name).st_mode) for name in ("fifo", "sock")}
    finally:
        sock.close()
    assert kinds == {"fifo": "a FIFO (named pipe)", "sock": "a socket"}
    assert file_kind(os.stat("/dev/zero").st_mode) == "a character device"
    assert file_kind(os.stat(tmp_path).st_mode) == "a directory"


def test_a_symlink_to_a_file_is_a_file_and_a_dangling_one_is_missing(tmp_path: Path) -> None:
    (tmp_path / "real.toml").write_text("x = 1\n")
    (tmp_path / "link.toml").symlink_to(tmp_path / "real.toml")
    assert check_file(tmp_path / "link.toml", "config file", ConfigError).st_size == 6
    (tmp_path / "dangling.toml").symlink_to(tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match=r"dangling.toml not found; pass a file"):
        check_file(tmp_path / "dangling.toml", "config file", ConfigError, fix="pass a file")


def test_a_fifo_is_refused_even_with_a_writer_waiting(tmp_path: Path) -> None:
    """Nothing is opened: a writer blocked on the FIFO stays blocked (it would be
    released by an open for reading)."""
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    opened = threading.Event()

    def writer() -> None:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until someone opens it for reading
        opened.set()
        os.close(fd)

    threading.Thread(target=writer, daemon=True).start()
    with pytest.raises(ConfigError, match=r"c.toml is a FIFO \(named pipe\), not a regular file"):
        read_bounded(fifo, "config file", ConfigError, max_bytes=100)
    assert not opened.wait(0.3)
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # let the writer go


def test_a_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "m.tflite"
    with open(big, "wb") as f:
        f.truncate(MAX_MODEL_BYTES + 1)  # sparse: costs no disk
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"m.tflite is 536,870,913 bytes, over the 512 MiB a model file may have"):
        read_model_bytes(big)
    assert time.monotonic() - t0 < 0.5


@pytest.mark.parametrize("model", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_a_model_is_one_error_from_each_entry(model: str) -> None:
    for read in (read_model_bytes, resolve_model):
        with pytest.raises(ModelError, match=rf"model file {model} is a character device, not a regular file"):
            read(Path(model) if read is read_model_bytes else model)


def test_a_file_source_that_is_a_device_or_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "cam.mp4")
    for spec, kind in ((str(tmp_path / "cam.mp4"), "a FIFO"), ("/dev/zero", "a character device")):
        with pytest.raises(SourceError, match=rf"source file {spec} is {kind}"):
            parse_source(spec).check_exists()
