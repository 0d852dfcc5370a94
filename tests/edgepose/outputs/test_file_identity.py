"""Output files are locked per file, not per spelling of their path; one destination
serves one output (stdout included); a recording that cannot start leaves an existing
file as it was. Real files, links and frames; the locks are real ``flock`` locks (a
second open file description in this process conflicts like another process)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from edgepose.app.config import build_config
from edgepose.cli.run import make_outputs
from edgepose.core.errors import ConfigError, OutputError
from edgepose.outputs.jsonl import JsonLinesOutput
from edgepose.outputs.recording import RecordingOutput
from tests.edgepose.outputs.helpers import real_results

OLD = b'{"frame": 0, "old": true}\n' * 10


def _links(tmp_path: Path) -> dict[str, Path]:
    """old.jsonl with a hard link and a symlink to it, and a symlink to a file not yet there."""
    real = tmp_path / "old.jsonl"
    real.write_bytes(OLD)
    os.link(real, tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(real)
    (tmp_path / "later-link.jsonl").symlink_to(tmp_path / "later.jsonl")
    return {"real": real, "hard": tmp_path / "hard.jsonl", "soft": tmp_path / "soft.jsonl",
            "later": tmp_path / "later.jsonl", "later-link": tmp_path / "later-link.jsonl"}


@pytest.mark.parametrize("first, second", [
    ("real", "hard"), ("hard", "real"), ("real", "soft"), ("soft", "hard"),
    ("later", "later-link"), ("later-link", "later"),
])
def test_a_second_writer_through_another_name_is_refused(tmp_path: Path, first: str, second: str) -> None:
    paths = _links(tmp_path)
    result = real_results(1)[0]
    a = JsonLinesOutput(str(paths[first]))
    a.open()
    try:
        a.write(result)  # the file exists from here on (and is locked as a file)
        b = JsonLinesOutput(str(paths[second]))
        with pytest.raises(ConfigError, match=rf"being written by another process \(PID {os.getpid()}\)"):
            b.open()
        b.close()
        a.write(result)
    finally:
        a.close()
    lines = paths[first].read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [result.record["frame"]] * 2


def test_a_writer_that_started_before_the_file_existed_locks_it_once_created(tmp_path: Path) -> None:
    """A is opened on a new file (only its lock file exists); once A's first record
    creates the file, a hard link made to it leads nowhere but to A's lock."""
    result = real_results(1)[0]
    a = JsonLinesOutput(str(tmp_path / "new.jsonl"))
    a.open()
    try:
        a.write(result)
        os.link(tmp_path / "new.jsonl", tmp_path / "alias.jsonl")
        with pytest.raises(ConfigError, match="being written by another process"):
            JsonLinesOutput(str(tmp_path / "alias.jsonl")).open()
    finally:
        a.close()
    assert len((tmp_path / "new.jsonl").read_text().splitlines()) == 1
    b = JsonLinesOutput(str(tmp_path / "alias.jsonl"))  # A is done: free again
    b.open()
    b.close()


@pytest.mark.parametrize("flags, where", [
    ({"json": "-", "output": ["-"]}, "stdout"),
    ({"json": "/dev/stdout", "output": ["-"]}, "stdout"),
    ({"json": "@real", "output": ["@hard"]}, "the same file"),
    ({"json": "@soft", "record": "@x.mp4", "output": ["@real"]}, "the same file"),
    ({"json": "@later", "output": ["@later-link"]}, "the same file"),
])
def test_one_destination_serves_one_output(tmp_path: Path, flags: dict[str, object], where: str) -> None:
    paths = _links(tmp_path)

    def fill(v: object) -> object:
        if isinstance(v, list):
            return [fill(x) for x in v]
        if isinstance(v, str) and v.startswith("@"):
            return str(paths.get(v[1:], tmp_path / v[1:]))
        return v

    cfg = build_config({k: fill(v) for k, v in flags.items()})
    with pytest.raises(ConfigError, match=f"both write to {where}; one destination serves one output"):
        make_outputs(cfg)
    assert paths["real"].read_bytes() == OLD


def test_distinct_files_and_dev_null_are_fine(tmp_path: Path) -> None:
    cfg = build_config({"json": str(tmp_path / "a.jsonl"), "output": [str(tmp_path / "b.jsonl")]})
    assert len(make_outputs(cfg)) == 2


@pytest.mark.parametrize("fps", [1e-9, 1e308])
def test_a_recording_that_cannot_start_leaves_the_old_file(tmp_path: Path, fps: float) -> None:
    """The encoder cannot work at this frame rate (the run refuses such values up front;
    here the output is driven directly): the old file keeps every byte."""
    old = tmp_path / "old.mp4"
    old.write_bytes(b"an earlier recording" * 500)
    rec = RecordingOutput(str(old), fps=fps)
    rec.open()
    start = r"the recording could not start: \w+ cannot encode 1768x994 frames at .* fps .*"
    with pytest.raises(OutputError, match=start + "; the file was left as it was"):
        rec.write(real_results(1)[0])
    rec.close()
    assert old.read_bytes() == b"an earlier recording" * 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.mp4"]  # lock file gone too


def test_a_recording_replaces_the_old_file_at_its_first_frame(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    old = tmp_path / "old.mp4"
    old.write_bytes(b"an earlier recording" * 500)
    results = real_results(3)
    rec = RecordingOutput(str(old), fps=25.0)
    rec.open()
    assert old.read_bytes() == b"an earlier recording" * 500  # open() touches nothing
    for r in results:
        rec.write(r)
    rec.close()
    with av.open(str(old)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
        h, w = results[0].image.shape[:2]
        assert (stream.width, stream.height) == (w & ~1, h & ~1)  # the source's own frame size
    assert frames == 3


def test_a_fifo_is_written_as_a_stream_without_a_lock_file(tmp_path: Path) -> None:
    """A pipe (a FIFO here, /dev/stdout into a pipe alike) is no file to lock: written
    as it is, nothing created beside it."""
    import threading

    fifo = tmp_path / "poses.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    results = real_results(2)
    time.sleep(0.3)  # the reader waits in open(): a check that opened the FIFO would hand it an early EOF
    out = JsonLinesOutput(str(fifo))
    out.check()
    out.open()
    for r in results:
        out.write(r)
    out.close()
    reader.join(10)
    assert [json.loads(line)["frame"] for line in got[0].decode().splitlines()] == \
        [r.record["frame"] for r in results]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.fifo"]
