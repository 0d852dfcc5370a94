"""Issue 15, files, images, videos and config: hostile inputs to ``edgepose`` and
``edgepose-run``. Each row runs the real CLI in a subprocess and checks the exit code,
exactly one stderr line, no traceback, and afterwards the state of every output file;
then the inputs that must work, compared with what the same picture gives upright,
8-bit or at a constant frame rate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED
from tests.faults.harness import Case, assert_one_line, run_case

OLD_JSONL = '{"frame": 0, "old": true}\n' * 10
OLD_MP4 = b"an old recording that must survive" * 100
SQUAT = "{shared}/images/coral_squat.bmp"
# the Lightning pipeline: the default would first try to download Thunder (offline here: one
# more warning line) and these rows are about faults, not models
RUN = ["edgepose-run", "--source", "{video}", "--display", "none", "--device", "cpu",
       "--model", "movenet-multipose-fast", "--log-level", "WARNING"]
FAST = ["--model", "movenet-lightning"]  # for rows that run frames: 2 ms an invoke


def _fifo(*names: str):
    def setup(tmp: Path) -> None:
        for name in names:
            os.mkfifo(tmp / name)
    return setup


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def _files(**files: str | bytes):
    def setup(tmp: Path) -> None:
        for name, content in files.items():
            p = tmp / name.replace("__", "/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def _link(name: str, target: Path | str):
    def setup(tmp: Path) -> None:
        p = tmp / name.replace("__", "/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(target if isinstance(target, Path) else Path(str(SHARED)) / target)
    return setup


def _blank_png(name: str, width: int, height: int):
    def setup(tmp: Path) -> None:
        from tests.fakes.images import cached_blank_png

        _link(name, cached_blank_png(width, height))(tmp)
    return setup


def _huge_video(tmp: Path) -> None:
    import numpy as np

    from tests.fakes.videos import write_video

    write_video(tmp / "huge.mkv", [np.zeros((7000, 8000, 3), np.uint8)], codec="mjpeg")


def _cut_mkv(tmp: Path) -> None:
    from tests.fakes.videos import read_frames, vfr_times, write_video

    frames = read_frames(SHARED / "videos/sports2d_demo.mp4", 60, scale=2)
    data = write_video(tmp / "vfr.mkv", frames, pts_ms=vfr_times(60)).read_bytes()
    (tmp / "cut.mkv").write_bytes(data[: len(data) // 2])


def _both(*steps):
    def setup(tmp: Path) -> None:
        for step in steps:
            step(tmp)
    return setup


def _old_outputs(tmp: Path) -> None:
    (tmp / "old.jsonl").write_text(OLD_JSONL)
    (tmp / "old.mp4").write_bytes(OLD_MP4)


def _outputs_untouched(tmp: Path) -> None:
    assert (tmp / "old.jsonl").read_text() == OLD_JSONL, "old.jsonl changed"
    assert (tmp / "old.mp4").read_bytes() == OLD_MP4, "old.mp4 changed"


def _records(name: str, count: int, errors: dict[str, str] | None = None):
    """``name`` holds ``count`` JSON records; the files named in ``errors`` have an
    error matching the text given, the others none."""
    def check(tmp: Path) -> None:
        recs = [json.loads(line) for line in (tmp / name).read_text().splitlines()]
        assert len(recs) == count, recs
        errs = {r.get("file"): r.get("error") for r in recs}
        for file, text in (errors or {}).items():
            assert errs[file] is not None and text in errs[file], errs
        assert sum(e is not None for e in errs.values()) == len(errors or {}), errs
    return check


CASES = [
    # ---- 1. bounded reads: type and size before a byte is read (no hang, no GB)
    Case("detect-fifo-image", ["edgepose", "detect", "{tmp}/f.jpg"], 2,
         r"image .*f\.jpg is a FIFO \(named pipe\), not a regular file; give a JPEG", setup=_fifo("f.jpg")),
    Case("detect-dev-zero-image", ["edgepose", "detect", "/dev/zero"], 2,
         r"image /dev/zero is a character device, not a regular file"),
    Case("detect-dev-zero-model", ["edgepose", "detect", SQUAT, "--model", "/dev/zero", "--device", "cpu"], 2,
         r"model file /dev/zero is a character device, not a regular file; give a \.tflite file"),
    Case("detect-fifo-model", ["edgepose", "detect", SQUAT, "--model", "{tmp}/m.tflite", "--decoder",
                               "movenet", "--schema", "coco17"], 2, r"m\.tflite is a FIFO", setup=_fifo("m.tflite")),
    Case("run-dev-zero-model", RUN + ["--model", "/dev/zero"], 2, r"model file /dev/zero is a character device"),
    Case("run-dev-zero-config", RUN + ["--config", "/dev/zero"], 2,
         r"config file /dev/zero is a character device, not a regular file; pass a TOML file"),
    Case("run-fifo-config", RUN + ["--config", "{tmp}/c.toml"], 2, r"c\.toml is a FIFO", setup=_fifo("c.toml")),
    Case("run-huge-config", RUN + ["--config", "{tmp}/c.toml"], 2,
         r"c\.toml is 3 MiB, over the 1 MiB a config file may have", setup=lambda t: _sparse(t / "c.toml", 3 << 20)),
    Case("run-fifo-video", RUN + ["--source", "{tmp}/v.mp4"], 2, r"source file .*v\.mp4 is a FIFO",
         setup=_fifo("v.mp4")),
    Case("run-fifo-image", RUN + ["--source", "{tmp}/f.jpg"], 2, r"source file .*f\.jpg is a FIFO",
         setup=_fifo("f.jpg")),
    Case("run-dev-zero-source", RUN + ["--source", "/dev/zero"], 2, r"/dev/zero is a character device"),
    Case("doctor-dev-zero-config", ["edgepose", "doctor", "--config", "/dev/zero"], 2,
         r"config file /dev/zero is a character device"),
    # ---- 2. our pixel limit (50 MP), PIL's bomb warning and error never shown
    Case("detect-png-20000", ["edgepose", "detect", "{tmp}/big.png"], 2,
         r"big\.png has 400 MP, over edgepose's limit of 50 MP", setup=_blank_png("big.png", 20000, 20000)),
    Case("detect-png-10000", ["edgepose", "detect", "{tmp}/big.png"], 2,
         r"big\.png is 10000x10000 \(100 MP\), over edgepose's limit of 50 MP",
         setup=_blank_png("big.png", 10000, 10000)),
    Case("run-source-png-20000", RUN + ["--source", "{tmp}/big.png", "--json", "{tmp}/old.jsonl"], 2,
         r"big\.png has 400 MP, over edgepose's limit", setup=_both(_old_outputs, _blank_png("big.png", 20000, 20000)),
         check=_outputs_untouched),
    Case("run-folder-with-a-bomb", RUN + FAST + ["--source", "{tmp}/imgs", "--json", "{tmp}/p.jsonl"], 0,
         r"WARNING .*skipped a bad image: .*b\.png has 400 MP, over edgepose's limit of 50 MP",
         setup=_both(_link("imgs__a.bmp", "images/coral_squat.bmp"), _blank_png("imgs__b.png", 20000, 20000),
                     _link("imgs__c.jpg", "images/posenet_test_couple.jpg")),
         check=_records("p.jsonl", 3, {"b.png": "over edgepose's limit of 50 MP"})),
    Case("run-video-over-limit", RUN + ["--source", "{tmp}/huge.mkv"], 2,
         r"video source .*huge\.mkv is 8000x7000 \(56 MP\), over edgepose's limit of 50 MP", setup=_huge_video),
    Case("run-camera-size-over-limit", RUN + ["--width", "10000", "--height", "8000"], 2,
         r"width x height 10000x8000 is 80 MP, over edgepose's limit of 50 MP"),
    # ---- 3. every number in a range the code can use; nothing touched before
    Case("run-width-1e12", RUN + ["--config", "{tmp}/c.toml"], 2, r"width 1000000000000 is out of range; use 16..16384",
         setup=_files(**{"c.toml": "width = 1000000000000\n"})),
    Case("run-height-int64-max", RUN + ["--config", "{tmp}/c.toml"], 2, r"height 9223372036854775807 is out of range",
         setup=_files(**{"c.toml": "height = 9223372036854775807\n"})),
    Case("run-invoke-timeout-1e-6", RUN + ["--invoke-timeout", "1e-6"], 2,
         r"invoke_timeout 1e-06 is out of range; use 0 \(.*\) or 1..3600 seconds"),
    Case("run-invoke-timeout-nan", RUN + ["--config", "{tmp}/c.toml"], 2, r"invoke_timeout nan is out of range",
         setup=_files(**{"c.toml": "invoke_timeout = nan\n"})),
    Case("run-load-timeout-inf", RUN + ["--config", "{tmp}/c.toml"], 2, r"load_timeout inf is out of range",
         setup=_files(**{"c.toml": "load_timeout = inf\n"})),
    Case("run-fps-inf", RUN + ["--config", "{tmp}/c.toml"], 2, r"fps inf is out of range",
         setup=_files(**{"c.toml": "fps = inf\n"})),
    Case("run-threads-nan", RUN + ["--config", "{tmp}/c.toml"], 2, r"num_threads = nan should be an int",
         setup=_files(**{"c.toml": "num_threads = nan\n"})),
    Case("run-fps-1e-9-keeps-record", RUN + ["--source", SQUAT, "--fps", "1e-9", "--record", "{tmp}/old.mp4",
                                             "--json", "{tmp}/old.jsonl"], 2,
         r"fps 1e-09 is out of range; use 0.01..1000", setup=_old_outputs, check=_outputs_untouched),
    Case("run-fps-1e308-keeps-record", RUN + ["--source", SQUAT, "--fps", "1e308", "--record", "{tmp}/old.mp4"], 2,
         r"fps 1e\+308 is out of range", setup=_old_outputs, check=_outputs_untouched),
    Case("doctor-probe-timeout-nan", ["edgepose", "doctor", "--probe-timeout", "nan", "--device", "cpu"], 2,
         r"probe timeout nan s is out of range; pass --probe-timeout 1..3600"),
    Case("doctor-probe-timeout-inf", ["edgepose", "doctor", "--probe-timeout", "inf", "--device", "cpu"], 2,
         r"probe timeout inf s is out of range"),
    Case("detect-threshold-nan", ["edgepose", "detect", SQUAT, "--pose-threshold", "nan"], 2, r"outside 0..1"),
    # ---- 4. config messages, and one line whatever a name contains
    Case("run-config-bom-accepted", RUN + ["--config", "{tmp}/c.toml"], 2, r"c\.toml: fps = 'x' should be",
         setup=_files(**{"c.toml": b"\xef\xbb\xbffps = 'x'\n"})),  # the BOM is fine, the value is not
    Case("run-config-utf16", RUN + ["--config", "{tmp}/c.toml"], 2,
         r"c\.toml is not valid TOML: it is UTF-16 text .*save it as UTF-8",
         setup=_files(**{"c.toml": "fps = 10\n".encode("utf-16")})),
    Case("run-config-newline-name-missing", RUN + ["--config", "{tmp}/a\nb.toml"], 2, r"a\\nb\.toml not found"),
    Case("run-config-newline-name-bad", RUN + ["--config", "{tmp}/a\nb.toml"], 2, r"a\\nb\.toml: fps = 'x' should be",
         setup=_files(**{"a\nb.toml": "fps = 'x'\n"})),
    Case("run-config-newline-in-value", RUN + ["--config", "{tmp}/c.toml"], 2, r"decoder 'heat\\nmap' is unknown",
         setup=_files(**{"c.toml": 'decoder = "heat\\nmap"\n'})),
    Case("detect-newline-name", ["edgepose", "detect", "{tmp}/x\ny.jpg"], 2, r"x\\ny\.jpg is not a readable image",
         setup=_files(**{"x\ny.jpg": b"\xff\xd8 not a jpeg"})),
    Case("detect-escape-sequence-name", ["edgepose", "detect", "{tmp}/x\x1b[2Jy.jpg"], 2,
         r"x\\x1b\[2Jy\.jpg not found"),
    Case("run-source-newline-name", RUN + ["--source", "{tmp}/a\nb.mp4"], 2, r"a\\nb\.mp4 not found"),
    Case("run-display-newline", RUN + ["--display", "tv\nhdmi"], 2, r"invalid choice: 'tv\\nhdmi'"),
    Case("run-folder-newline-name", RUN + FAST + ["--source", "{tmp}/imgs", "--json", "{tmp}/p.jsonl"], 0,
         r"WARNING .*imgs/b\\nx\.jpg is not a readable image",
         setup=_both(_link("imgs__a.bmp", "images/coral_squat.bmp"), _files(**{"imgs__b\nx.jpg": b"junk"})),
         check=_records("p.jsonl", 2, {"b\nx.jpg": "not a readable image"})),
    # ---- 5. a folder where every image is bad is refused, outputs untouched; an image whose
    # header is fine but data cut fails when detect reaches it (images are decoded one by one)
    Case("run-folder-all-bad", RUN + ["--source", "{tmp}/imgs", "--json", "{tmp}/old.jsonl", "--record",
                                      "{tmp}/old.mp4"], 2,
         r"image folder .*imgs has no readable image: image .*a\.jpg is not a readable image .* \(and 2 more\)",
         setup=_both(_old_outputs, _files(**{"imgs__a.jpg": b"junk", "imgs__b.png": b""}),
                     _blank_png("imgs__c.png", 20000, 20000)),
         check=_outputs_untouched),
    Case("detect-jpeg-cut-in-data-streamed", ["edgepose", "detect", SQUAT, "{tmp}/cut.jpg", "--device", "cpu",
                                              "--model", "movenet-multipose-fast", "--json"], 2,
         r"cut\.jpg is not a readable image \(OSError: image file is truncated",
         setup=lambda t: (t / "cut.jpg").write_bytes((SHARED / "images/posenet_test_couple.jpg").read_bytes()[:30000])),
    Case("run-truncated-mkv", RUN + FAST + ["--source", "{tmp}/cut.mkv", "--json", "{tmp}/p.jsonl"], 1,
         r"cut\.mkv is truncated or damaged: .*last good frame: frame \d+ at \d", setup=_cut_mkv),
]

#: rows that must end at once (a FIFO or a device read would hang or eat memory)
QUICK = {c.id for c in CASES if "fifo" in c.id or "dev-zero" in c.id or "png-" in c.id}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_input_fault(case: Case, tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} not found: set EDGEPOSE_SHARED")
    if case.setup is not None:
        case.setup(tmp_path)
    t0 = time.monotonic()
    proc = run_case(case, tmp_path, timeout=180)
    took = time.monotonic() - t0
    assert_one_line(case, proc)
    assert "DecompressionBomb" not in proc.stderr and "warnings.warn" not in proc.stderr
    if case.id in QUICK:
        assert took < 30, f"{case.id} took {took:.1f} s"
    if case.check is not None:
        case.check(tmp_path)


def test_the_table_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 40


# ---- 5. images and videos as the user sees them: the same people as the plain file

def _cli(*args: str, prog: str = "edgepose.cli.main") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", prog, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def _detect(*images: Path) -> dict[str, list[dict]]:
    """``edgepose detect --json`` (movenet-multipose-fast, CPU): poses scoring >= 0.2 per file."""
    proc = _cli("detect", "--device", "cpu", "--model", "movenet-multipose-fast", "--json", "--pose-threshold",
                "0.2", *map(str, images))
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    found: dict[str, list[dict]] = {str(p): [] for p in images}
    for r in json.loads(proc.stdout):
        found[r["file_name"]].append(r)
    return found


def _keypoints(result: dict) -> list[tuple[float, float]]:
    kp = result["keypoints"]
    return [(kp[i], kp[i + 1]) for i in range(0, len(kp), 3)]


#: how far the same person's keypoints may move between two encodings of one picture
#: (median, source pixels): a few model-input pixels (MoveNet sees 192 px, so one is 5 to
#: 10 source pixels here); a picture read turned or mirrored moves them by hundreds
SAME_PX = 20.0


def _same_people(a: list[dict], b: list[dict], px: float = SAME_PX) -> None:
    """The same number of people, each of ``a`` with one of ``b`` whose keypoints are
    within ``px`` (median) of its own."""
    import numpy as np

    assert len(a) == len(b) >= 2, (len(a), len(b))
    for pose in a:
        ka = np.array(_keypoints(pose))
        best = min(float(np.median(np.linalg.norm(ka - np.array(_keypoints(q)), axis=1))) for q in b)
        assert best < px, best


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} not found: set EDGEPOSE_SHARED")
    return SHARED


def test_a_phone_photo_with_exif_orientation_gives_the_upright_poses(tmp_path: Path, shared: Path) -> None:
    from tests.fakes.images import write_exif_rotated

    src = shared / "images/posenet_test_couple.jpg"
    upright = write_exif_rotated(src, tmp_path / "upright.jpg", 1, quality=95)
    phone = write_exif_rotated(src, tmp_path / "phone.jpg", 6, quality=95)  # stored on its side
    found = _detect(upright, phone)
    _same_people(found[str(upright)], found[str(phone)])


def test_16_bit_grey_and_palette_images_find_the_same_people(tmp_path: Path, shared: Path) -> None:
    from PIL import Image

    from tests.fakes.images import write_grey16

    src = shared / "images/posenet_test_couple.jpg"
    grey8 = tmp_path / "grey8.jpg"
    Image.open(src).convert("L").save(grey8, quality=95)
    grey16 = write_grey16(grey8, tmp_path / "grey16.png")
    palette = tmp_path / "palette.png"
    Image.open(src).convert("RGB").quantize(256).save(palette)
    found = _detect(src, grey8, grey16, palette)
    _same_people(found[str(grey8)], found[str(grey16)], px=2.0)  # the same grey levels
    _same_people(found[str(src)], found[str(palette)])


def _run_records(source: Path, tmp: Path, name: str) -> list[dict]:
    out = tmp / f"{name}.jsonl"
    proc = _cli("--source", str(source), "--display", "none", "--device", "cpu", "--model",
                "movenet-lightning", "--log-level", "WARNING", "--json", str(out),
                prog="edgepose.cli.run")
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_video_with_a_rotation_tag_is_read_upright(tmp_path: Path, shared: Path) -> None:
    import numpy as np

    from tests.fakes.videos import read_frames, write_video

    frames = read_frames(shared / "videos/pose2sim_singleperson_cam01.mp4", 12, scale=2)  # portrait
    upright = write_video(tmp_path / "upright.mp4", frames)
    turned = [np.ascontiguousarray(np.rot90(f, k=-1)) for f in frames]  # stored landscape, as phones do
    phone = write_video(tmp_path / "phone.mp4", turned, rotation=90)  # with the turn back in its tag
    a, b = _run_records(upright, tmp_path, "a"), _run_records(phone, tmp_path, "b")
    assert len(a) == len(b) == 12
    assert {(r["width"], r["height"]) for r in b} == {(540, 960)}
    for ra, rb in zip(a, b):
        assert len(ra["poses"]) == len(rb["poses"]) == 1
        pairs = [(p, q) for p, q in zip(ra["poses"][0]["keypoints"], rb["poses"][0]["keypoints"])
                 if p["score"] >= 0.3 and q["score"] >= 0.3]
        assert len(pairs) >= 10
        dist = [np.hypot(p["x"] - q["x"], p["y"] - q["y"]) for p, q in pairs]
        assert float(np.median(dist)) < SAME_PX


def test_a_variable_frame_rate_mkv_is_not_called_truncated(tmp_path: Path, shared: Path) -> None:
    from tests.fakes.videos import read_frames, vfr_times, write_video

    frames = read_frames(shared / "videos/sports2d_demo.mp4", 60, scale=2)
    vfr = write_video(tmp_path / "vfr.mkv", frames, pts_ms=vfr_times(60))
    records = _run_records(vfr, tmp_path, "vfr")  # exit 0, nothing on stderr
    assert [r["frame"] for r in records] == list(range(60))
