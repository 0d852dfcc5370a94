"""Issue 10's table: bad inputs and faults across edgepose, edgepose-run and
edgepose-tools. Each case runs the real CLI in a subprocess and checks the exit code,
one stderr line, no traceback, and afterwards the state of every output file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.faults.harness import Case, assert_one_line, hold_output, mount_tmpfs, release, run_case, umount

OLD_JSONL = '{"frame": 0, "old": true}\n' * 100


def _existing_jsonl(tmp: Path) -> None:
    (tmp / "old.jsonl").write_text(OLD_JSONL)


def _untouched(tmp: Path) -> None:
    assert (tmp / "old.jsonl").read_text() == OLD_JSONL


def _files(**files: str | bytes):
    def setup(tmp: Path) -> None:
        for name, content in files.items():
            p = tmp / name.replace("__", "/")
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
    return setup


def _both(*steps):
    def run(tmp: Path) -> None:
        for step in steps:
            step(tmp)
    return run


def _small_disk(free: int = 12000):
    """A 64 KiB tmpfs at tmp/disk, filled up to ``free`` bytes."""
    def setup(tmp: Path) -> None:
        if not mount_tmpfs(tmp / "disk", "64k"):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        filler = tmp / "disk" / "filler"
        try:
            with open(filler, "wb") as f:
                f.write(b"\0" * (64 * 1024))
        except OSError:
            pass
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - free))
    return setup


def _readonly_disk(tmp: Path) -> None:
    if not mount_tmpfs(tmp / "ro", "64k", readonly=True):
        pytest.skip("cannot mount a tmpfs here (needs root)")


def _valid_jsonl(name: str, at_least: int = 1):
    def check(tmp: Path) -> None:
        text = (tmp / name).read_text()
        assert text == "" or text.endswith("\n"), "partial last line"
        recs = [json.loads(line) for line in text.splitlines()]
        assert len(recs) >= at_least
    return check


def _absent(*names: str):
    def check(tmp: Path) -> None:
        for n in names:
            assert not (tmp / n).exists(), n
    return check


def _holder(tmp: Path) -> None:
    """Another process writing tmp/held.jsonl (its lock), for the second-writer case."""
    hold_output(tmp / "held.jsonl")


def _mpii_like_coco(tmp: Path) -> None:
    """coco17_dev with one keypoint dropped from every annotation (16, as MPII has)."""
    data = json.loads((SHARED / "data/coco17_dev/person_keypoints.json").read_text())
    for ann in data["annotations"]:
        ann["keypoints"] = ann["keypoints"][:48]
    (tmp / "kp16.json").write_text(json.dumps(data))

MANIFEST_BAD_PARAMS = ('name = "x"\nfile = "m.tflite"\ninput_size = [192, 192]\ndecoder = "movenet"\n'
                       'schema = "coco17"\n[decoder_params]\nsmoothing = 3\n')
MOVENET_FILE = SHARED / "models/coral/movenet_single_pose_lightning_ptq.tflite"


def _damaged_cache(tmp: Path) -> None:
    (tmp / "cache").mkdir()
    (tmp / "cache" / MOVENET_FILE.name).write_bytes(MOVENET_FILE.read_bytes()[:100_000])


def _sidecar(text: str):
    def setup(tmp: Path) -> None:
        (tmp / "m.tflite").symlink_to(MOVENET_FILE)
        (tmp / "m.toml").write_text(text)
    return setup


SIDECAR = ('name = "x"\nfile = "m.tflite"\ninput_size = [192, 192]\ndecoder = "movenet"\n'
           'schema = "coco17"\n')
# the Lightning pipeline: the default would first try to download Thunder (offline here: one
# more warning line) and these rows are about faults, not models
RUN = ["edgepose-run", "--source", "{video}", "--display", "none", "--device", "cpu",
       "--model", "movenet-multipose-fast", "--log-level", "WARNING"]

CASES = [
    # ---- edgepose-run: flags and config
    Case("run-display-choice", RUN + ["--display", "hdmi"], 2, r"invalid choice: 'hdmi'"),
    Case("run-config-threshold", RUN + ["--config", "{tmp}/c.toml"], 2, r"pose_threshold -1 is out of range",
         setup=_files(**{"c.toml": 'pose_threshold = -1\n'})),
    Case("run-config-unknown-key", RUN + ["--config", "{tmp}/c.toml"], 2, r"unknown key 'sauce'; did you mean 'source'",
         setup=_files(**{"c.toml": 'sauce = "0"\n'})),
    Case("run-config-not-toml", RUN + ["--config", "{tmp}/c.toml"], 2, r"is not valid TOML",
         setup=_files(**{"c.toml": b"\xff\xfe\x00"})),
    Case("run-config-missing", RUN + ["--config", "{tmp}/none.toml"], 2, r"config file .*none.toml not found"),
    Case("run-config-output-not-list", RUN + ["--config", "{tmp}/c.toml"], 2,
         r"output = 'a.jsonl' should be a list of strings", setup=_files(**{"c.toml": 'output = "a.jsonl"\n'})),
    Case("run-config-json-empty", RUN + ["--config", "{tmp}/c.toml"], 2, r"json = '' is empty",
         setup=_files(**{"c.toml": 'json = ""\n'})),
    Case("run-source-missing", RUN + ["--source", "{tmp}/missing.mp4"], 2, r"source file .*missing.mp4 not found"),
    Case("run-source-empty-file", RUN + ["--source", "{tmp}/empty.mp4"], 2, r"empty.mp4 is empty",
         setup=_files(**{"empty.mp4": b""})),
    Case("run-source-text-as-video", RUN + ["--source", "{tmp}/text.mp4"], 2, r"cannot open video source .*text.mp4",
         setup=_files(**{"text.mp4": "this is not a video\n" * 50})),
    Case("run-source-scheme", RUN + ["--source", "gopher://example.org/x"], 2, r"scheme gopher:// is not supported"),
    Case("run-source-no-webcam", RUN + ["--source", "/dev/video99"], 2, r"webcam /dev/video99 not found"),
    Case("run-model-unknown", RUN + ["--model", "openpose-xl"], 2, r"unknown model 'openpose-xl'"),
    Case("run-model-dir", RUN + ["--model", "{tmp}"], 2, r"is a directory"),
    Case("run-model-empty", RUN + ["--model", "{tmp}/m.tflite"], 2, r"m.tflite",
         setup=_files(**{"m.tflite": b""})),
    Case("run-model-not-tflite", RUN + ["--model", "{tmp}/m.tflite", "--decoder", "movenet", "--schema", "coco17"],
         2, r"m.tflite", setup=_files(**{"m.tflite": "not a flatbuffer" * 10})),
    Case("run-bare-tflite-advice", RUN + ["--model", "{shared}/models/coral/movenet_single_pose_lightning_ptq.tflite",
                                          "--json", "{tmp}/old.jsonl"], 2,
         r"has no manifest .*pass --decoder", setup=_existing_jsonl, check=_untouched,
         env={"EDGEPOSE_MODEL_PATH": ""}),
    Case("run-damaged-cached-model", RUN + ["--model", "movenet-lightning"], 2,
         r"does not match manifest 'movenet-lightning'.*edgepose models fetch --force movenet-lightning",
         setup=_damaged_cache, env={"EDGEPOSE_MODEL_PATH": "", "EDGEPOSE_CACHE_DIR": "{tmp}/cache"}),
    Case("run-sidecar-sha256", RUN + ["--model", "{tmp}/m.tflite"], 2, r"does not match its manifest",
         setup=_sidecar(SIDECAR + 'sha256 = "' + "ab" * 32 + '"\n')),
    Case("run-sidecar-std-zero", RUN + ["--model", "{tmp}/m.tflite"], 2, r"every std must be positive",
         setup=_sidecar(SIDECAR + "mean = 127.5\nstd = 0\n")),
    Case("run-device", RUN + ["--device", "tpu9"], 2, r"unknown device 'tpu9'"),
    Case("run-device-usb-abc", RUN + ["--device", "usb:abc"], 2, r"unknown device 'usb:abc'"),
    Case("run-fps-nan", RUN + ["--fps", "nan"], 2, r"fps nan is out of range"),
    Case("run-fps-text", RUN + ["--fps", "fast"], 2, r"invalid float value: 'fast'"),
    Case("run-threads-huge", RUN + ["--num-threads", "100000"], 2, r"num_threads 100000 is out of range"),
    Case("run-threads-zero", RUN + ["--num-threads", "0"], 2, r"num_threads 0 is out of range"),
    Case("run-threshold", RUN + ["--keypoint-threshold", "1.5"], 2, r"keypoint_threshold 1.5 is out of range"),
    Case("run-max-frames", RUN + ["--max-frames", "-1"], 2, r"max_frames -1 must be 0"),
    Case("run-snapshots-no-dir", RUN + ["--snapshot-every", "5"], 2, r"needs a folder"),
    Case("run-serve-no-token", RUN + ["--serve", "0.0.0.0:8080"], 2, r"beyond loopback needs a token"),
    Case("run-serve-port", RUN + ["--serve", "99999"], 2, r"expected \[HOST:\]PORT"),
    # ---- edgepose-run: outputs checked before anything is opened
    Case("run-output-scheme", RUN + ["--output", "zmq://h:1/x"], 2, r"scheme zmq:// is not an output"),
    Case("run-output-no-suffix", RUN + ["--output", "{tmp}/poses"], 2, r"no suffix is not an output"),
    Case("run-json-dir", RUN + ["--json", "{tmp}"], 2, r"is a directory"),
    Case("run-json-no-folder", RUN + ["--json", "{tmp}/none/p.jsonl"], 2, r"folder .*none does not exist"),
    Case("run-json-readonly-fs", RUN + ["--json", "{tmp}/ro/p.jsonl"], 2, r"is not writable", setup=_readonly_disk),
    Case("run-same-file-twice", RUN + ["--json", "{tmp}/p.jsonl", "--output", "{tmp}/p.jsonl"], 2,
         r"given twice", check=_absent("p.jsonl")),
    Case("run-json-and-record-same", RUN + ["--json", "{tmp}/p.mp4", "--record", "{tmp}/p.mp4"], 2,
         r"also --json|given twice|is also", check=_absent("p.mp4")),
    Case("run-second-writer", RUN + ["--json", "{tmp}/held.jsonl"], 2,
         r"held.jsonl is being written by another process \(PID \d+\)", setup=_holder),
    Case("run-failed-start-keeps-json", RUN + ["--json", "{tmp}/old.jsonl", "--record", "{tmp}/x.avi"], 2,
         r"expected a \.mp4 file name", setup=_existing_jsonl, check=_untouched),
    Case("run-bad-decoder-params-keeps-json",
         RUN + ["--model", "{tmp}/m.tflite", "--json", "{tmp}/old.jsonl"], 2, r"no parameter 'smoothing'",
         setup=_both(_existing_jsonl, _files(**{"m.toml": MANIFEST_BAD_PARAMS}),
                     lambda t: (t / "m.tflite").symlink_to(
                         SHARED / "models/coral/movenet_single_pose_lightning_ptq.tflite"))),
    Case("run-record-avi", RUN + ["--record", "{tmp}/x.avi"], 2, r"expected a \.mp4 file name"),
    Case("run-record-proc", RUN + ["--record", "/proc/edgepose.mp4"], 2, r"/proc"),
    Case("run-record-readonly-fs", RUN + ["--record", "{tmp}/ro/x.mp4"], 2, r"x.mp4", setup=_readonly_disk),
    Case("run-record-is-dir", RUN + ["--record", "{tmp}/d.mp4"], 2, r"is a directory",
         setup=lambda t: (t / "d.mp4").mkdir()),
    Case("run-snapshots-readonly-fs", RUN + ["--snapshot-every", "1", "--snapshot-dir", "{tmp}/ro/snaps"], 2,
         r"snaps", setup=_readonly_disk),
    Case("run-failed-start-keeps-mp4", RUN + ["--record", "{tmp}/old.mp4", "--snapshot-every", "1",
                                              "--snapshot-dir", "{tmp}/ro/snaps"], 2, r"snaps",
         setup=_both(_readonly_disk, _files(**{"old.mp4": b"old recording"})),
         check=lambda t: (t / "old.mp4").read_bytes() == b"old recording" or pytest.fail("old.mp4 changed")),
    # ---- edgepose-run: damaged input is reported, the rest is processed
    Case("run-bad-image-in-folder", RUN + ["--source", "{tmp}/imgs", "--json", "{tmp}/p.jsonl"], 0,
         r"WARNING .*b\.jpg", setup=_both(_files(**{"imgs__b.jpg": b"\xff\xd8 not a jpeg"}),
                                           lambda t: (t / "imgs" / "a.bmp").symlink_to(SHARED / "images/coral_squat.bmp"),
                                           lambda t: (t / "imgs" / "c.bmp").symlink_to(SHARED / "images/coral_squat.bmp")),
         check=_valid_jsonl("p.jsonl", at_least=3)),
    Case("run-truncated-video", RUN + ["--source", "{tmp}/cut.mp4", "--json", "{tmp}/p.jsonl"], 1,
         r"last good frame", setup=lambda t: (t / "cut.mp4").write_bytes(
             (SHARED / "videos/sports2d_demo.mp4").read_bytes()[:400_000]),
         check=_valid_jsonl("p.jsonl", at_least=1)),
    # ---- edgepose-run: write failures mid-run (exit 1, what was written stays valid)
    Case("run-json-dev-full", RUN + ["--json", "/dev/full"], 1, r"/dev/full: write failed"),
    Case("run-json-disk-full", RUN + ["--json", "{tmp}/disk/p.jsonl", "--loop", "--max-frames", "200"], 1,
         r"p.jsonl: write failed: No space left on device", setup=_small_disk(),
         check=_valid_jsonl("disk/p.jsonl")),
    # ---- edgepose
    Case("models-list-dev-full", ["edgepose", "models", "list"], 1, r"stdout: No space left on device", stdout="/dev/full"),
    Case("models-info-unknown", ["edgepose", "models", "info", "nope"], 2, r"unknown model 'nope'"),
    Case("models-fetch-unknown", ["edgepose", "models", "fetch", "nope"], 2, r"unknown model 'nope'"),
    Case("models-fetch-nothing", ["edgepose", "models", "fetch"], 2, r"name the model"),
    Case("models-fetch-url-many", ["edgepose", "models", "fetch", "--url", "http://x/y", "movenet-lightning",
                                   "movenet-lightning-edgetpu"], 2, r"--url names one file"),
    Case("detect-missing", ["edgepose", "detect", "{tmp}/none.jpg"], 2, r"none.jpg not found"),
    Case("detect-bad-image", ["edgepose", "detect", "{tmp}/bad.jpg"], 2, r"bad.jpg is not a readable image",
         setup=_files(**{"bad.jpg": b"\xff\xd8 not a jpeg"})),
    Case("detect-threshold", ["edgepose", "detect", "{shared}/images/coral_squat.bmp", "--keypoint-threshold", "2"],
         2, r"outside 0..1"),
    Case("detect-output-is-file", ["edgepose", "detect", "{shared}/images/coral_squat.bmp", "--output", "{tmp}/f"],
         2, r"is not a directory", setup=_files(f="x")),
    Case("detect-output-readonly", ["edgepose", "detect", "{shared}/images/coral_squat.bmp", "--output",
                                    "{tmp}/ro"], 2, r"ro.*not writable", setup=_readonly_disk),
    Case("detect-json-dev-full", ["edgepose", "detect", "{shared}/images/coral_squat.bmp", "--json",
                                  "--device", "cpu", "--model", "movenet-multipose-fast"], 1,
         r"No space left on device", stdout="/dev/full"),
    Case("detect-device", ["edgepose", "detect", "{shared}/images/coral_squat.bmp", "--device", "gpu"], 2,
         r"unknown device 'gpu'"),
    Case("doctor-device", ["edgepose", "doctor", "--device", "tpu9"], 2, r"unknown device 'tpu9'"),
    Case("edgepose-no-command", ["edgepose"], 2, r"required"),
    # ---- edgepose-tools
    Case("tools-check-missing", ["edgepose-tools", "check", "{tmp}/none.tflite"], 2, r"none.tflite"),
    Case("tools-check-not-tflite", ["edgepose-tools", "check", "{tmp}/x.tflite"], 2, r"x.tflite",
         setup=_files(**{"x.tflite": "hello" * 20})),
    Case("tools-compile-no-compiler", ["edgepose-tools", "compile", "{shared}/models/coral/"
                                       "movenet_single_pose_lightning_ptq.tflite", "--out-dir", "{tmp}"],
         2, r"edgetpu_compiler", env={"PATH": "/usr/bin:/bin", "EDGETPU_COMPILER": ""}),
    Case("tools-evaluate-16-keypoints", ["edgepose-tools", "evaluate", "--model", "movenet-lightning",
                                        "--coco", "{tmp}/kp16.json", "--images", "{shared}/data/coco17_dev/images"],
         2, r"kp16.json.*16 keypoints, model movenet-lightning predicts 17", setup=_mpii_like_coco),
    Case("tools-evaluate-missing", ["edgepose-tools", "evaluate", "--coco", "{tmp}/none.json", "--images",
                                    "{tmp}"], 2, r"none.json"),
    Case("tools-no-command", ["edgepose-tools"], 2, r"required"),
]


@pytest.fixture(autouse=True)
def _cleanup(tmp_path: Path):
    yield
    release()
    for name in ("disk", "ro"):
        if (tmp_path / name).is_mount():
            umount(tmp_path / name)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} not found: set EDGEPOSE_SHARED")
    if case.setup is not None:
        case.setup(tmp_path)
    proc = run_case(case, tmp_path)
    assert_one_line(case, proc)
    if case.check is not None:
        case.check(tmp_path)


def test_the_table_is_large_and_its_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
