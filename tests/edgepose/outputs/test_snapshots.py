"""``--snapshot-every N --snapshot-dir DIR`` in this process: which frames are saved and
under what names, what is drawn on them, how they are encoded, what ``check`` refuses,
and what a failed write leaves."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgepose.core.errors import ConfigError, OutputError, RenderError
from edgepose.core.imageio import encode_image
from edgepose.core.pose import Poses
from edgepose.outputs.base import FrameResult
from edgepose.outputs.snapshots import SnapshotOutput
from edgepose.render.draw import annotate
from tests.conftest import load_rgb, shared_path


def _pose() -> Poses:
    """One standing person on a 160x120 frame, every keypoint scored 0.5."""
    k = np.arange(17, dtype=np.float32)
    xy = np.stack([60 + 2 * k, 10 + 6 * k], -1)[None]
    return Poses(xy, np.full((1, 17), 0.5, np.float32), np.array([0.5], np.float32))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.ascontiguousarray(load_rgb(shared_path("images", "tfexamples_image1.png"))[:120, :160])


def _result(image: np.ndarray, **record: object) -> FrameResult:
    return FrameResult(dict(record), image, _pose())


def _opened(folder: Path, **options: object) -> SnapshotOutput:
    out = SnapshotOutput(str(folder), **options)  # type: ignore[arg-type]
    out.check()
    out.open()
    return out


def test_every_nth_good_frame_is_saved_under_its_frame_index(tmp_path: Path, image: np.ndarray) -> None:
    out = _opened(tmp_path / "snaps", every=3, fmt="png")
    for i in range(8):
        out.write(_result(image, frame=i, **({"error": "unreadable"} if i == 4 else {})))
    out.close()
    # good frames 0 1 2 3 5 6 7: the 3rd and the 6th are frames 2 and 6
    assert [p.name for p in out.saved] == ["snapshot_000002.png", "snapshot_000006.png"]
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == [p.name for p in out.saved]
    assert out.written == 2 and out.seen == 7
    assert out.summary() == f"{tmp_path / 'snaps'}: 2 frame(s)"
    # a record without a frame index is numbered by the frames seen, from 0
    plain = _opened(tmp_path / "plain")
    for _ in range(2):
        plain.write(_result(image))
    assert [p.name for p in plain.saved] == ["snapshot_000000.jpg", "snapshot_000001.jpg"]


def test_a_snapshot_is_the_annotated_frame_at_the_given_threshold(tmp_path: Path, image: np.ndarray) -> None:
    """PNG is lossless: the file is ``annotate`` at the output's keypoint threshold (0.6
    hides the 0.5 keypoints that the default 0.3 draws)."""
    for threshold in (0.6, 0.3):
        out = _opened(tmp_path / str(threshold), fmt="png", keypoint_threshold=threshold)
        out.write(_result(image, frame=0))
        saved = np.asarray(Image.open(out.saved[0]).convert("RGB"))
        np.testing.assert_array_equal(saved, annotate(image, _pose(), threshold))
    assert not np.array_equal(annotate(image, _pose(), 0.6), annotate(image, _pose(), 0.3))


def test_jpeg_snapshots_are_encoded_at_the_given_quality(tmp_path: Path, image: np.ndarray) -> None:
    drawn = annotate(image, _pose(), 0.3)
    for quality in (90, 40):
        out = _opened(tmp_path / str(quality), **({} if quality == 90 else {"quality": quality}))
        out.write(_result(image, frame=0))
        assert out.saved[0].read_bytes() == encode_image(drawn, "jpg", quality)
        assert Image.open(io.BytesIO(out.saved[0].read_bytes())).format == "JPEG"
    assert encode_image(drawn, "jpg", 90) != encode_image(drawn, "jpg", 91)


@pytest.mark.parametrize("options, message", [
    ({"every": 0}, "snapshot_every 0 must be a whole number of frames >= 1"),
    ({"every": True}, "snapshot_every True must be"),
    ({"fmt": "gif"}, "snapshot format 'gif': expected one of jpg, png"),
    ({"keypoint_threshold": -0.01}, "keypoint_threshold -0.01 must be between 0 and 1"),
    ({"keypoint_threshold": 1.01}, "keypoint_threshold 1.01 must be between 0 and 1"),
])
def test_check_refuses(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SnapshotOutput(str(tmp_path), **options).check()  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_check_takes_the_edges_and_a_folder_still_to_be_made(tmp_path: Path) -> None:
    for threshold in (0.0, 1.0):
        SnapshotOutput(str(tmp_path / "new" / "deeper"), keypoint_threshold=threshold).check()
    assert not (tmp_path / "new").exists()  # check() makes nothing


def test_check_refuses_a_folder_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError) as info:
        SnapshotOutput(str(tmp_path / "f" / "snaps")).check()
    assert str(info.value) == (f"snapshot folder {tmp_path / 'f' / 'snaps'}: {tmp_path / 'f'} is not a "
                               "folder; pass a folder with --snapshot-dir")


def test_check_names_the_folder_it_cannot_write(tmp_path: Path) -> None:
    """/proc/self is a folder in which no file can be made, even by root."""
    with pytest.raises(ConfigError, match=r"^snapshot folder /proc/self/snaps: cannot write into /proc/self"):
        SnapshotOutput("/proc/self/snaps").check()


def test_open_needs_opencv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(RenderError, match=r"OpenCV \(cv2\) is not installed"):
        SnapshotOutput(str(tmp_path)).open()


def test_a_failed_write_keeps_the_earlier_snapshots_and_stops(tmp_path: Path, image: np.ndarray) -> None:
    """The folder becomes a file's child after ``check`` (someone moved it): the second
    snapshot fails with one OutputError naming it, nothing partial is left, and every
    later frame gets the same error."""
    out = _opened(tmp_path / "snaps", fmt="png")
    out.write(_result(image, frame=0))
    (tmp_path / "snaps" / "snapshot_000001.png").mkdir()  # the place of the next one is taken
    with pytest.raises(OutputError) as info:
        out.write(_result(image, frame=1))
    assert str(info.value).startswith(f"snapshot {tmp_path / 'snaps' / 'snapshot_000001.png'}: ")
    assert str(info.value).endswith("after 1 snapshot(s); the earlier ones are complete")
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == ["snapshot_000000.png", "snapshot_000001.png"]
    with pytest.raises(OutputError) as again:
        out.write(_result(image, frame=2))
    assert str(again.value) == out.error and out.written == 1
    # a folder that cannot even be made: no temporary file to remove, the same one error
    (tmp_path / "f").write_text("x")
    moved = _opened(tmp_path / "g")
    moved.folder = tmp_path / "f" / "snaps"
    with pytest.raises(OutputError, match=r"after 0 snapshot\(s\); the earlier ones are complete$"):
        moved.write(_result(image, frame=0))


def test_the_folder_and_its_parents_are_made_at_the_first_snapshot(tmp_path: Path, image: np.ndarray) -> None:
    out = _opened(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()
    out.write(_result(image, frame=3))
    assert [p.relative_to(tmp_path).as_posix() for p in out.saved] == ["new/deeper/snapshot_000003.jpg"]
