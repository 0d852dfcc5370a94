"""JSON Lines output on real PoseNet results: complete lines, lazy creation, locking,
disk full on a real tmpfs, stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.core.errors import ConfigError, OutputError
from edgepose.outputs import make_output
from edgepose.outputs.base import FrameResult
from edgepose.outputs.jsonl import JsonLinesOutput
from edgepose.outputs.records import frame_record
from edgepose.sources import open_source
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def couple():
    from edgepose.inference.engine import open_engine

    path = shared_path("images", "posenet_test_couple.jpg")
    with open_source(str(path)) as src:
        frame = src.read()
    assert frame is not None
    with open_engine("posenet-mobilenet-v1-075-481x641", "cpu") as engine:
        poses = engine.infer(frame.image)
    return frame, poses


def _result(couple, latency: float = 12.5) -> FrameResult:
    frame, poses = couple
    return FrameResult(frame_record(frame, poses, latency, device="cpu"), frame.image, poses)


def test_records_are_one_complete_json_line_each(tmp_path: Path, couple) -> None:
    frame, poses = couple
    assert len(poses) >= 2  # two people in the picture
    out = tmp_path / "poses.jsonl"
    sink = make_output(str(out))
    assert isinstance(sink, JsonLinesOutput)
    sink.check()
    sink.open()
    for latency in (12.5, 13.25):
        sink.write(_result(couple, latency))
        # written whole per record: a reader sees it before the output is closed
        assert out.read_text().endswith("}\n")
    sink.close()
    sink.close()  # closing twice is harmless
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    h, w = frame.size
    assert [r["latency_ms"] for r in recs] == [12.5, 13.25]
    for r in recs:
        assert (r["frame"], r["width"], r["height"], r["device"]) == (frame.index, w, h, "cpu")
        assert len(r["poses"]) == len(poses)
        for i, p in enumerate(r["poses"]):
            assert p["score"] == pytest.approx(float(poses.pose_scores[i]), abs=1e-4)
            for k, kp in enumerate(p["keypoints"]):
                assert kp["x"] == pytest.approx(float(poses.xy[i, k, 0]), abs=0.01)
    assert sink.written == 2 and "2 record(s)" in sink.summary()


def test_an_existing_file_is_untouched_until_the_first_record(tmp_path: Path, couple) -> None:
    out = tmp_path / "poses.jsonl"
    out.write_text('{"old": 1}\n')
    sink = JsonLinesOutput(str(out))
    sink.check()
    sink.open()
    assert out.read_text() == '{"old": 1}\n'  # a start that fails here loses nothing
    sink.close()
    assert out.read_text() == '{"old": 1}\n'
    sink = JsonLinesOutput(str(out))
    sink.open()
    sink.write(_result(couple))
    sink.close()
    assert json.loads(out.read_text())["frame"] == couple[0].index


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    out = tmp_path / "poses.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from edgepose.outputs.jsonl import JsonLinesOutput as J;"
         f"o = J({str(out)!r}); o.open(); print('locked', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"^--json {out} is being written by another process "
                                              rf"\(PID {holder.pid}\)"):
            JsonLinesOutput(str(out)).open()
    finally:
        holder.kill()
        holder.wait()
    again = JsonLinesOutput(str(out))  # the killed holder's lock died with it
    again.open()
    again.close()


@pytest.mark.parametrize("target, match", [
    ("missing-dir/out.jsonl", r"folder .*missing-dir does not exist"),
    (".", r"is a directory"),
])
def test_unwritable_targets_are_config_errors_without_side_effects(tmp_path: Path, target: str,
                                                                   match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        JsonLinesOutput(str(tmp_path / target)).check()
    assert "\n" not in str(info.value) and str(info.value).startswith("--json ")
    assert not (tmp_path / "missing-dir").exists()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_disk_full_keeps_every_complete_record(tmp_path: Path, couple) -> None:
    disk = tmp_path / "small"
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = disk / "poses.jsonl"
        sink = JsonLinesOutput(str(out))
        sink.open()
        with pytest.raises(OutputError, match=r"poses.jsonl: write failed: No space left on device") as info:
            for _ in range(10_000):
                sink.write(_result(couple))
        sink.close()
        assert "\n" not in str(info.value)
        text = out.read_text()
        assert text.endswith("\n")
        recs = [json.loads(line) for line in text.splitlines()]  # every line complete
        assert len(recs) == sink.written > 10
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_dev_full_is_an_output_error(couple) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    sink = JsonLinesOutput("/dev/full")
    sink.check()
    sink.open()
    with pytest.raises(OutputError, match="/dev/full: write failed"):
        sink.write(_result(couple))
    sink.close()


def test_dash_writes_to_stdout_and_leaves_it_open(capsys: pytest.CaptureFixture[str], couple) -> None:
    sink = make_output("-")
    sink.open()
    sink.write(_result(couple, 1.0))
    sink.close()
    print("still open")
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[0])["frame"] == couple[0].index and out[1] == "still open"


def test_stdout_counts_its_records(capsys: pytest.CaptureFixture[str], couple) -> None:
    sink = make_output("-")
    sink.open()
    for _ in range(3):
        sink.write(_result(couple))
    sink.close()
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert sink.summary() == "--json -: 3 record(s)"


def test_the_file_is_made_rw_r_r_and_the_summary_names_the_flag(tmp_path: Path, couple) -> None:
    out = tmp_path / "poses.jsonl"
    old = os.umask(0)
    try:
        sink = JsonLinesOutput(str(out), flag="--output")
        sink.open()
        sink.write(_result(couple))
        sink.close()
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
    assert sink.summary() == f"--output {out}: 1 record(s)"


def test_a_folder_gone_before_the_first_record_is_one_output_error(tmp_path: Path, couple) -> None:
    (tmp_path / "d").mkdir()
    out = tmp_path / "d" / "poses.jsonl"
    sink = JsonLinesOutput(str(out))
    sink.check()
    sink.open()
    (tmp_path / "d" / ".poses.jsonl.lock").unlink()
    (tmp_path / "d").rmdir()
    with pytest.raises(OutputError) as info:
        sink.write(_result(couple))
    assert str(info.value) == f"--json {out}: cannot open for writing (No such file or directory)"
    sink.close()


def test_a_pipe_nobody_reads_is_a_stream_error_not_a_full_disk(couple) -> None:
    """A path to a pipe (here this process's own, by /proc/self/fd, as bash's ``>(...)``
    gives /dev/fd/63): checked and written as a stream, no lock file, though no file can be
    made in its folder; its reader gone, the write fails with EPIPE, which is no full disk."""
    r, w = os.pipe()
    os.close(r)
    try:
        sink = JsonLinesOutput(f"/proc/self/fd/{w}")
        sink.check()
        sink.open()  # a stream: no lock file to make beside /proc/self/fd/N
        with pytest.raises(OutputError) as info:
            sink.write(_result(couple))
        sink.close()
    finally:
        os.close(w)
    assert str(info.value) == (f"--json /proc/self/fd/{w}: write failed: Broken pipe; it holds the "
                               "first 0 records, each complete")


def test_disk_full_says_so_and_the_summary_keeps_one_flag(tmp_path: Path, couple) -> None:
    disk = tmp_path / "small"
    if not _mount_tmpfs(disk, "16k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = disk / "poses.jsonl"
        sink = JsonLinesOutput(str(out))
        sink.open()
        with pytest.raises(OutputError) as info:
            for _ in range(10_000):
                sink.write(_result(couple))
        sink.error = str(info.value)  # as the pipeline records it
        sink.close()
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert str(info.value).endswith(f"write failed: No space left on device (disk full); it holds the first "
                                    f"{sink.written} records, each complete")
    assert sink.summary() == f"--json {out}: {sink.written} record(s), stopped: {info.value}"
