"""Recordings and snapshots on real video frames with real MoveNet poses: what they
hold, their frame rate and keyframes, a SIGKILL mid-recording, a full disk (a tmpfs the
test mounts, else a file-size limit), bad targets, and FFmpeg kept off stderr."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, OutputError
from edgepose.core.pose import Poses
from edgepose.outputs import make_output
from edgepose.outputs.base import FrameResult
from edgepose.outputs.recording import RecordingOutput
from edgepose.outputs.records import frame_record
from edgepose.outputs.snapshots import SnapshotOutput
from edgepose.render import annotate
from edgepose.sources import open_source
from edgepose.sources.base import Frame
from tests.conftest import REPO, shared_path

cv2 = pytest.importorskip("cv2")
av = pytest.importorskip("av")

VIDEO = ("videos", "sports2d_demo.mp4")  # 230 frames, 1768x994, 30 fps
RECORDER = [sys.executable, "-m", "tests.edgepose.outputs.recorder"]
RUN = [sys.executable, "-m", "edgepose.cli.run"]


@pytest.fixture(scope="module")
def results() -> list[FrameResult]:
    """Frames 60-104 of the clip (the runner in full view) with their poses from the
    real engine."""
    from edgepose.inference.engine import open_engine

    out = []
    with open_source(str(shared_path(*VIDEO))) as src, \
            open_engine("movenet-lightning", "cpu") as engine:
        for frame in src:
            if frame.index < 60:
                continue
            poses = engine.infer(frame.image)
            out.append(FrameResult(frame_record(frame, poses, 0.0), frame.image, poses))
            if len(out) == 45:
                break
    return out


def decoded(path: Path) -> list[np.ndarray]:
    """Every frame OpenCV can decode from ``path``, RGB."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr[..., ::-1])
    cap.release()
    return frames


def record(path: Path, results: list[FrameResult], **options) -> RecordingOutput:
    out = RecordingOutput(str(path), **options)
    out.check()
    out.open()
    for r in results:
        out.write(r)
    out.close()
    return out


def test_recording_holds_every_annotated_frame(results: list[FrameResult], tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    out = record(path, results, fps=30.0, keypoint_threshold=0.3)
    frames = decoded(path)
    assert out.written == len(frames) == 45
    assert out.size == (1768, 994) and out.codec_name == "libx264"
    clear = [i for i, r in enumerate(results) if (r.poses.scores >= 0.3).sum() >= 10]
    assert len(clear) >= 10  # the runner is found
    for i in (clear[0], clear[len(clear) // 2], clear[-1]):  # the skeleton is drawn; lossy:
        want = annotate(results[i].image, results[i].poses, 0.3)
        assert np.abs(frames[i].astype(np.int16) - want).mean() < 4.0  # compare loosely
        drawn = np.any(want != results[i].image, axis=-1)
        assert drawn.sum() > 500
        # where the skeleton is, the recording is much closer to the annotated frame
        err_annotated = np.abs(frames[i][drawn].astype(np.int16) - want[drawn]).mean()
        err_plain = np.abs(frames[i][drawn].astype(np.int16) - results[i].image[drawn]).mean()
        assert err_annotated * 3 < err_plain
    out.close()  # idempotent
    assert out.summary() == f"--record {path}: 45 frame(s)"


@pytest.mark.parametrize("fps, rate", [(30.0, Fraction(30)), (30000 / 1001, Fraction(30000, 1001)),
                                       (12.5, Fraction(25, 2))])
def test_frame_rate_is_exact_and_keyframes_come_every_second(
        results: list[FrameResult], tmp_path: Path, fps: float, rate: Fraction) -> None:
    path = tmp_path / "out.mp4"
    record(path, results, fps=fps)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == rate
        packets = [p for p in container.demux(stream) if p.size]
        times = [p.pts * p.time_base for p in packets]
        keys = [t for p, t in zip(packets, times) if p.is_keyframe]
    assert len(packets) == 45
    assert times == [Fraction(i) / rate for i in range(45)]  # one tick per frame, exact
    assert keys[0] == 0 and all(b - a <= 1 for a, b in zip(keys, keys[1:]))
    assert times[-1] - keys[-1] <= 1


def test_frames_are_scaled_to_the_first_and_unreadable_ones_left_out(
        results: list[FrameResult], tmp_path: Path) -> None:
    small = results[1].image[::2, ::2].copy()  # 884x497
    odd = [FrameResult(results[0].record, small[:-1], Poses.empty()),  # 884x496
           FrameResult(results[1].record, results[1].image, Poses.empty()),
           FrameResult({"frame": 2, "error": "image x.jpg is empty"}, np.zeros((1, 1, 3), np.uint8),
                       Poses.empty())]
    path = tmp_path / "out.mp4"
    out = record(path, odd)
    frames = decoded(path)
    assert out.size == (884, 496) and out.written == len(frames) == 2
    want = cv2.resize(results[1].image, (884, 496), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[1].astype(np.int16) - want).mean() < 6.0


def test_nothing_is_created_before_the_first_frame(tmp_path: Path) -> None:
    old = tmp_path / "old.mp4"
    old.write_bytes(b"an earlier recording")
    out = RecordingOutput(str(old))
    out.check()
    out.open()
    out.close()  # a run that failed to start
    assert old.read_bytes() == b"an earlier recording" and out.written == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.mp4"]


def _noise(n: int, shape: tuple[int, int] = (480, 640)) -> list[FrameResult]:
    """Frames of random pixels: every one costs the encoder, none resembles the last."""
    rng = np.random.default_rng(7)
    return [FrameResult({"frame": i}, rng.integers(0, 256, (*shape, 3), dtype=np.uint8), Poses.empty())
            for i in range(n)]


def test_each_frame_leaves_the_encoder_as_it_comes(tmp_path: Path) -> None:
    """libx264 tuned for zero latency hands back each frame's packet at once (no look-ahead,
    no frame threads): with a keyframe on every frame, each frame closes the previous
    frame's fragment, so the file holds every frame but the newest."""
    out = RecordingOutput(str(tmp_path / "out.mp4"), fps=30.0, keyframe_interval=1 / 30, flush="fragment")
    out.check()
    out.open()
    held = []
    for result in _noise(5):
        out.write(result)
        held.append(out.written)
    out.close()
    assert out.codec_name == "libx264"
    assert held == [0, 1, 2, 3, 4] and out.written == 5


def _x264_options(path: Path) -> dict[str, str]:
    """The settings libx264 writes into the stream (its SEI "options:" line)."""
    found = re.search(rb"x264 - core .*? options: ([^\x00]*)", path.read_bytes())
    assert found, "no x264 settings in the file"
    return dict(item.split("=", 1) for item in found.group(1).decode().split())


def test_libx264_runs_its_cheapest_preset_with_keyframes_only_on_time(tmp_path: Path) -> None:
    """ultrafast (the Pi's CPU encodes while it infers): no CABAC, one reference, no
    sub-pixel search, no B-frames; keyframes every second (``keyint``), none added at
    scene cuts (``scenecut=0``: fragments, and so what a kill loses, stay one second)."""
    path = tmp_path / "out.mp4"
    record(path, _noise(3, (120, 160)), fps=12.5, keyframe_interval=2.0)
    options = _x264_options(path)
    assert {k: options[k] for k in ("cabac", "ref", "subme", "me", "bframes", "scenecut", "keyint")} == \
        {"cabac": "0", "ref": "1", "subme": "0", "me": "dia", "bframes": "0", "scenecut": "0", "keyint": "25"}


@pytest.mark.parametrize("codec", ["libvpx-vp9"])
def test_an_encoder_that_holds_frames_back_gives_them_all_up_at_close(tmp_path: Path, codec: str) -> None:
    """Encoders with a look-ahead (``codec`` in the Python API) return their last frames
    only when flushed: ``close`` muxes them into the file."""
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"the FFmpeg inside PyAV has no {codec}")
    path = tmp_path / "out.mp4"
    out = RecordingOutput(str(path), fps=30.0, codec=codec)
    out.check()
    out.open()
    for result in _noise(12, (120, 160)):
        out.write(result)
    assert out.written == 0  # all twelve are still in the encoder or the open fragment
    out.close()
    assert out.error is None and out.written == len(decoded(path)) == 12


def test_an_encoder_that_cannot_start_says_why_in_one_short_clause(tmp_path: Path) -> None:
    """No H.264 encoder takes 20000x2 frames: the message names the encoder, the size, the
    rate and FFmpeg's reason without its errno prefix or its detail after a colon, and
    that no file was made."""
    path = tmp_path / "new.mp4"
    rec = RecordingOutput(str(path), fps=30.0)
    rec.check()
    rec.open()
    with pytest.raises(OutputError) as info:
        rec.write(FrameResult({"frame": 0}, np.zeros((2, 20000, 3), np.uint8), Poses.empty()))
    rec.close()
    head = f"--record {path}: the recording could not start: {rec.codec_name} cannot encode 20000x2 frames at 30 fps ("
    message = str(info.value)
    assert message.startswith(head) and message.endswith("); the file was not created"), message
    reason = message[len(head):-len("); the file was not created")]
    assert reason and len(reason) <= 80 and "Errno" not in reason and ":" not in reason, reason
    assert sorted(tmp_path.iterdir()) == []


def test_a_folder_gone_before_the_first_frame_is_one_line(results: list[FrameResult],
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    out = RecordingOutput(str(folder / "out.mp4"))
    out.check()
    out.open()
    shutil.rmtree(folder)  # with the lock file open() put there
    with pytest.raises(OutputError) as info:
        out.write(results[0])
    msg = str(info.value)
    assert "\n" not in msg and f"--record {folder / 'out.mp4'}: cannot create it" in msg
    assert "No such file or directory (ENOENT)" in msg
    with pytest.raises(OutputError):
        out.write(results[1])  # stays failed
    out.close()
    assert not folder.exists()


@pytest.mark.parametrize("spec, options, match", [
    ("out.avi", {}, r"expected a \.mp4 file name"),
    ("<tmp>/missing/out.mp4", {}, "folder .*missing does not exist"),
    ("<tmp>/dir.mp4", {}, r"dir\.mp4 is a directory"),
    ("/proc/edgepose.mp4", {}, "cannot write into /proc"),
    ("<tmp>/out.mp4", {"fps": 0}, "fps 0 must be a positive"),
    ("<tmp>/out.mp4", {"fps": float("nan")}, "fps nan must be a positive"),
    ("<tmp>/out.mp4", {"keypoint_threshold": 1.5}, "keypoint_threshold 1.5"),
    ("<tmp>/out.mp4", {"codec": "nosuchcodec"}, "has no such encoder"),
    ("<tmp>/out.mp4", {"fps": 0}, r"^--record <tmp>/out.mp4: fps 0 must be a positive number of frames per "
                                  r"second$"),
    ("<tmp>/out.mp4", {"keypoint_threshold": -0.1}, r"^keypoint_threshold -0.1 must be between 0 and 1$"),
    ("<tmp>/out.mp4", {"keyframe_interval": 0}, r"^--record <tmp>/out.mp4: keyframe_interval 0 must be a "
                                                r"positive number of seconds$"),
    ("<tmp>/out.mp4", {"flush": "never"}, r"^--record <tmp>/out.mp4: flush 'never': expected one of sync, "
                                          r"fragment, buffered$"),
    ("out.avi", {}, r"^--record out.avi: expected a \.mp4 file name$"),
])
def test_check_refuses_bad_targets_without_side_effects(tmp_path: Path, spec: str, options: dict,
                                                        match: str) -> None:
    (tmp_path / "dir.mp4").mkdir()
    before = sorted(tmp_path.iterdir())
    out = RecordingOutput(spec.replace("<tmp>", str(tmp_path)), **options)
    with pytest.raises(ConfigError, match=match.replace("<tmp>", str(tmp_path))) as info:
        out.check()
    assert "\n" not in str(info.value)
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("options", [{"fps": 0.5}, {"keypoint_threshold": 0.0}, {"keypoint_threshold": 1.0},
                                     {"keyframe_interval": 0.01}, {"flush": "fragment"}])
def test_check_takes_values_at_the_edges(tmp_path: Path, options: dict) -> None:
    RecordingOutput(str(tmp_path / "out.mp4"), **options).check()


def test_mp4_outputs_are_recordings() -> None:
    assert isinstance(make_output("clip.MP4", fps=25.0), RecordingOutput)


# --- a killed recording and a full disk, in a process of their own --------------------

def _recorder(path: Path, video: str) -> list[str]:
    return RECORDER + [str(path), video, "--realtime"]


def _edgepose_run(path: Path, video: str) -> list[str]:  # a JSON line per frame written
    return RUN + ["--source", video, "--loop", "--realtime", "--display", "none", "--device",
                  "cpu", "--json", "-", "--record", str(path), "--log-level", "WARNING"]


@pytest.mark.parametrize("command", [_recorder, _edgepose_run], ids=["output", "edgepose-run"])
def test_sigkill_mid_recording_keeps_every_frame_up_to_2_s_before(tmp_path: Path, command) -> None:
    path = tmp_path / "killed.mp4"
    proc = subprocess.Popen(command(path, str(shared_path(*VIDEO))), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[float] = []  # when each frame's line arrived
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            assert line.startswith(("frame ", '{"frame":')), line
            seen.append(time.monotonic())
            if seen[-1] - seen[0] >= 4.5:
                break
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    due = sum(1 for t in seen if t <= killed_at - 2.0)  # written at least 2 s before the kill
    frames = decoded(path)
    assert due >= 10  # frames from at least one complete fragment (a paced run may drop)
    assert due <= len(frames) <= len(seen)
    ref = cv2.VideoCapture(str(shared_path(*VIDEO)))  # the recording starts at the clip's start
    ok, bgr = ref.read()
    ref.release()
    assert ok and np.abs(frames[0].astype(np.int16) - bgr[..., ::-1]).mean() < 6.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A 2 MiB tmpfs mounted for the test (and the recorder options that go with it), or,
    where mounting is not permitted, a plain folder and a 2 MiB file-size limit
    (RLIMIT_FSIZE: the write fails with EFBIG instead of ENOSPC). Room for one or two of
    the recording's 30-frame fragments of sports2d_demo (~1 MB each, more or less by
    how much skeleton is drawn), never the whole clip."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as err:
        reason = getattr(err, "stderr", b"") or str(err)
        print(f"mount not permitted ({reason!r}): using RLIMIT_FSIZE instead")
        yield disk, ["--fsize-limit", str(2 << 20)]
        return
    try:
        yield disk, []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, timeout=30)


def test_disk_full_is_one_line_naming_the_file_and_what_fitted_plays(
        small_disk: tuple[Path, list[str]]) -> None:
    disk, extra = small_disk
    path = disk / "full.mp4"
    proc = subprocess.run(RECORDER + [str(path), str(shared_path(*VIDEO)), "--frames", "230"]
                          + extra, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, proc.stdout
    assert f"--record {path}: " in errors[0]
    assert ("No space left on device (ENOSPC)" in errors[0] if not extra
            else "File too large (EFBIG)" in errors[0])
    written = int(lines[-1].removeprefix("closed: "))
    given = sum(1 for line in lines if line.startswith("frame "))
    assert f"the file keeps the first {written}, playable" in errors[0]
    assert 0 < written < given < 230  # the disk filled up mid-run
    assert len(decoded(path)) == written  # every frame that fitted, and it plays
    assert "Traceback" not in proc.stderr and proc.stderr.strip() == ""


def test_a_full_disk_in_this_process_cuts_back_to_the_last_fragment(
        small_disk: tuple[Path, list[str]], results: list[FrameResult]) -> None:
    """The same fault as above with the output in this process (so that what it keeps
    and says is checked where mutation testing can see it): one OutputError naming the
    file, every later frame refused with the same words, the file cut back to what plays."""
    disk, extra = small_disk
    if extra:
        pytest.skip("no tmpfs could be mounted here")
    path, filler = disk / "here.mp4", disk / "filler"
    filler.write_bytes(b"\0" * (256 << 10))  # removed after the failure: room again at close
    out = RecordingOutput(str(path), fps=30.0)
    out.check()
    out.open()
    given = 0
    with pytest.raises(OutputError) as info:
        for _ in range(10):
            for r in results:
                out.write(r)
                given += 1
    message = str(info.value)
    assert message == out.error
    # the frame whose write failed counts among the encoded ones
    assert message.startswith(f"--record {path}: No space left on device (ENOSPC) after {given + 1} frame(s); "
                              "the file keeps the first ")
    kept = int(message.split("the file keeps the first ")[1].split(",")[0])
    assert message.endswith(f"the file keeps the first {kept}, playable") and 0 < kept < given
    with pytest.raises(OutputError) as again:
        out.write(results[0])
    assert str(again.value) == message
    cut = path.stat().st_size
    filler.unlink()
    out.close()
    out.close()
    assert path.stat().st_size == cut  # the muxer's last words after the failure went nowhere,
    # though there was room for them again
    assert len(decoded(path)) == kept
    assert not [p.name for p in disk.iterdir() if p.name != "here.mp4"]  # no lock or part left


def test_edgepose_run_on_a_full_disk_exits_1_with_one_line(small_disk: tuple[Path, list[str]],
                                                           tmp_path: Path) -> None:
    disk, extra = small_disk
    if extra:
        pytest.skip("no tmpfs could be mounted here")
    path, json_path = disk / "run.mp4", tmp_path / "run.jsonl"
    proc = subprocess.run(RUN + ["--source", str(shared_path(*VIDEO)), "--display", "none",
                                 "--device", "cpu", "--model", "movenet-multipose-fast",
                                 "--record", str(path), "--json", str(json_path),
                                 "--log-level", "WARNING"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--record {path}: No space left on device (ENOSPC)" in lines[0]
    kept = int(lines[0].split("the file keeps the first ")[1].split(",")[0])
    assert kept > 0 and len(decoded(path)) == kept
    assert json_path.read_text().count("\n") == 230  # the other output went on to the end


def test_ffmpeg_messages_go_to_the_debug_log_only(tmp_path: Path) -> None:
    video = str(shared_path(*VIDEO))
    quiet = subprocess.run(RECORDER + [str(tmp_path / "a.mp4"), video, "--frames", "3",
                                       "--log-level", "INFO"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    loud = subprocess.run(RECORDER + [str(tmp_path / "b.mp4"), video, "--frames", "3",
                                      "--log-level", "DEBUG"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == loud.returncode == 0
    assert "libx264" not in quiet.stderr.replace("with libx264", "")  # our own info line only
    ffmpeg = [line for line in loud.stderr.splitlines() if " edgepose.ffmpeg: " in line]
    assert ffmpeg and all(line.startswith("DEBUG ") for line in ffmpeg)
    assert any("libx264" in line for line in ffmpeg)


# --- snapshots -----------------------------------------------------------------------

def test_snapshots_every_nth_frame_named_by_frame(results: list[FrameResult],
                                                  tmp_path: Path) -> None:
    folder = tmp_path / "snaps" / "today"  # created at the first snapshot
    out = SnapshotOutput(str(folder), every=3, keypoint_threshold=0.3)
    out.check()
    out.open()
    assert not folder.exists()
    for r in results[:10]:
        out.write(r)
    out.close()
    out.close()
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["snapshot_000062.jpg", "snapshot_000065.jpg", "snapshot_000068.jpg"]
    assert out.written == 3
    snap = cv2.imread(str(folder / files[0]))[..., ::-1]
    want = annotate(results[2].image, results[2].poses, 0.3)
    assert snap.shape == want.shape and np.abs(snap.astype(np.int16) - want).mean() < 4.0


@pytest.mark.parametrize("spec, every, match", [
    ("<tmp>/file.txt", 1, "is not a folder"),
    ("/proc/snaps", 1, "cannot write into /proc"),
    ("<tmp>/snaps", 0, "whole number of frames >= 1"),
    ("<tmp>/snaps", 2.5, "whole number of frames >= 1"),
])
def test_snapshot_check_refuses_bad_targets(tmp_path: Path, spec: str, every, match: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    out = SnapshotOutput(spec.replace("<tmp>", str(tmp_path)), every=every)
    with pytest.raises(ConfigError, match=match):
        out.check()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_snapshots_on_a_full_disk_stop_with_one_line(results: list[FrameResult],
                                                    small_disk: tuple[Path, list[str]]) -> None:
    disk, extra = small_disk
    if extra:
        pytest.skip("no tmpfs could be mounted here")
    out = SnapshotOutput(str(disk), every=1)
    out.check()
    out.open()
    with pytest.raises(OutputError) as info:
        for r in results:
            out.write(r)
    out.close()
    msg = str(info.value)
    assert "\n" not in msg and f"snapshot {disk}/snapshot_" in msg and "(ENOSPC)" in msg
    saved = sorted(disk.glob("*.jpg"))
    assert 0 < out.written == len(saved)  # no half-written JPEG left behind
    assert all(cv2.imread(str(p)) is not None for p in saved)
    assert not list(disk.glob(".*"))


def test_snapshot_frames_that_could_not_be_read_are_not_counted(tmp_path: Path) -> None:
    out = SnapshotOutput(str(tmp_path), every=1)
    out.check()
    out.open()
    bad = Frame(np.zeros((1, 1, 3), np.uint8), 0.0, 0, name="x.jpg", error="image x.jpg is empty")
    out.write(FrameResult(frame_record(bad, Poses.empty(), 0.0), bad.image, Poses.empty()))
    out.close()
    assert out.written == 0 and list(tmp_path.iterdir()) == []
