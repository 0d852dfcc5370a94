"""``edgepose detect`` end to end, and its one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import load_rgb, shared_path

CORAL = ("models", "coral")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgepose.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def test_detect_json_and_annotated_output(tmp_path: Path) -> None:
    imgs = [shared_path("images", "coral_squat.bmp"), shared_path("images", "tfexamples_image1.png")]
    r = _run("detect", *map(str, imgs), "--model", "movenet-lightning", "--device", "cpu",
             "--json", "--output", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [x["image_id"] for x in res] == [1, 2]
    assert [x["file_name"] for x in res] == [str(p) for p in imgs]
    assert all(len(x["keypoints"]) == 51 and x["category_id"] == 1 for x in res)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["coral_squat_pose.png", "tfexamples_image1_pose.png"]


def test_same_named_images_get_separate_annotated_files(tmp_path: Path) -> None:
    for sub, name in (("a", "coral_squat.bmp"), ("b", "tfexamples_image1.png")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / ("x" + Path(name).suffix)).symlink_to(shared_path("images", name))
    r = _run("detect", str(tmp_path / "a" / "x.bmp"), str(tmp_path / "b" / "x.png"),
             "--device", "cpu", "--output", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == ["x_1_pose.png", "x_2_pose.png"]
    # one per source image, in argument order (neither overwrote the other)
    assert [load_rgb(p).shape[:2] for p in written] == [(610, 500), (640, 384)]


def test_detect_multi_pose_posenet() -> None:
    img = shared_path("images", "posenet_test_couple.jpg")
    r = _run("detect", str(img), "--model", "posenet-mobilenet-v1-075-481x641", "--device", "cpu",
             "--json", "--pose-threshold", "0.2")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 2  # the couple


def test_edgetpu_device_without_runtime_exits_2_naming_libedgetpu() -> None:
    img = shared_path("images", "coral_squat.bmp")
    r = _run("detect", str(img), "--model", "movenet-lightning-edgetpu", "--device", "edgetpu", "--json")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "libedgetpu" in r.stderr and r.stdout == ""


def test_auto_device_falls_back_to_cpu_twin_with_right_keypoints(tmp_path: Path) -> None:
    from PIL import Image

    from tests.edgepose.inference.test_engine import coral_input

    img = tmp_path / "squat_192.png"  # the input Coral used for its reference
    Image.fromarray(coral_input("coral_squat.bmp")).save(img)
    r = _run("detect", str(img), "--model", "movenet-lightning-edgetpu", "--device", "auto", "--json",
             "--no-crops")  # Coral's reference is one pass on the whole input
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "no Edge TPU" in warnings[0]
    ref = np.loadtxt(shared_path(*CORAL, "movenet_single_pose_lightning_ptq_reference.csv"),
                     delimiter=",", skiprows=1)
    kps = np.array(json.loads(r.stdout)[0]["keypoints"]).reshape(17, 3)
    assert np.abs(kps[:, :2] / 192.0 - ref[:, 4:6]).max() <= 0.03


def _bad_manifest(tmp: Path, body: str) -> str:
    model = tmp / "m.tflite"
    model.symlink_to(shared_path(*CORAL, "movenet_single_pose_lightning_ptq.tflite"))
    (tmp / "m.toml").write_text(body)
    return str(model)


BASE = 'name = "m"\nfile = "m.tflite"\ndecoder = "movenet"\nschema = "coco17"\n'
Case = Callable[[Path], list[str]]
CASES: dict[str, tuple[Case, str]] = {
    "missing model file": (lambda t: ["IMG", "--model", str(t / "nope.tflite")], "not found"),
    "0-byte model": (lambda t: (t / "z.tflite").write_bytes(b"") or
                     ["IMG", "--model", str(t / "z.tflite"), "--decoder", "movenet", "--schema", "coco17"], "empty"),
    "text file named .tflite": (lambda t: (t / "t.tflite").write_text("hello\n") and
                                ["IMG", "--model", str(t / "t.tflite"), "--decoder", "movenet", "--schema", "coco17"],
                                "not a TFLite model"),
    "truncated model": (lambda t: (t / "c.tflite").write_bytes(
        shared_path(*CORAL, "movenet_single_pose_lightning_ptq.tflite").read_bytes()[:500_000]) and
        ["IMG", "--model", str(t / "c.tflite"), "--decoder", "movenet", "--schema", "coco17"], "truncated"),
    "outputs don't fit decoder": (lambda t: ["IMG", "--model", str(shared_path(
        *CORAL, "posenet_mobilenet_v1_075_353_481_quant.tflite")), "--decoder", "movenet", "--schema", "coco17"],
        "don't fit decoder"),
    "0-byte model, no flags": (lambda t: (t / "z.tflite").write_bytes(b"") or
                               ["IMG", "--model", str(t / "z.tflite")], "empty"),
    "text .tflite, no flags": (lambda t: (t / "t.tflite").write_text("hello\n") and
                               ["IMG", "--model", str(t / "t.tflite")], "not a TFLite model"),
    "output folder not creatable": (lambda t: ["IMG", "--output", "/proc/edgepose-out"],
                                    "cannot create it"),
    "unknown model name": (lambda t: ["IMG", "--model", "movenet-thunderstorm"], "unknown model"),
    "manifest missing field": (lambda t: ["IMG", "--model", _bad_manifest(t, BASE)], "missing required field"),
    "malformed sha256": (lambda t: ["IMG", "--model", _bad_manifest(
        t, BASE + 'input_size = [192, 192]\nsha256 = "xyz"\n')], "not 64 hex digits"),
    "unreadable image": (lambda t: (t / "i.jpg").write_bytes(b"\xff\xd8 broken") and
                         [str(t / "i.jpg")], "not a readable image"),
    "0-byte image": (lambda t: (t / "e.png").write_bytes(b"") or [str(t / "e.png")], "empty"),
    "directory as image": (lambda t: [str(t)], "is a directory"),
    "missing image": (lambda t: [str(t / "missing.jpg")], "not found"),
    "bad threshold": (lambda t: ["IMG", "--keypoint-threshold", "-1"], "outside 0..1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2(case: str, tmp_path: Path) -> None:
    make, expected = CASES[case]
    img = str(shared_path("images", "coral_squat.bmp"))
    args = [img if a == "IMG" else a for a in make(tmp_path)]
    r = _run("detect", *args, "--device", "cpu", "--json")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expected in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


# The people of ultralytics_bus.jpg (810x1080), boxed by hand once: the image drawn with
# a 50 px grid, each person's box read off it (x0, y0, x1, y1) from the top of the head
# to the soles, arm tip to arm tip.
BUS_PEOPLE = {
    "man in the beige coat": (50, 395, 245, 905),
    "man in the black coat": (222, 400, 345, 862),
    "man walking in at the right edge": (668, 395, 810, 882),
}
# Cut off at the left edge (a patterned sleeve and a hand): a pose there is allowed, not required.
BUS_PARTIAL = {"person cut off at the left edge": (0, 545, 80, 875)}


def test_bus_one_pose_per_person_none_spanning_two() -> None:
    """Defaults (the multi-person model): every visible person gets one pose, and each
    pose's confident keypoints all lie on one person."""
    img = shared_path("images", "ultralytics_bus.jpg")
    r = _run("detect", str(img), "--json")
    assert r.returncode == 0, r.stderr
    found: dict[str, int] = {}
    for pose in json.loads(r.stdout):
        kps = np.array(pose["keypoints"]).reshape(17, 3)
        pts = kps[kps[:, 2] >= 0.3, :2]
        assert len(pts) >= 5, pose
        owners = [name for name, box in {**BUS_PEOPLE, **BUS_PARTIAL}.items()
                  if _inside(pts, box, slack=0.15)]
        assert len(owners) == 1, f"a pose on {owners or 'nobody'}: {pts.round().tolist()}"
        found[owners[0]] = found.get(owners[0], 0) + 1
    assert {n: found.get(n, 0) for n in BUS_PEOPLE} == {n: 1 for n in BUS_PEOPLE}
    assert all(found.get(n, 0) <= 1 for n in BUS_PARTIAL)


def _inside(pts: np.ndarray, box: tuple[int, int, int, int], slack: float) -> bool:
    """All points within the box grown by ``slack`` of its size on each side."""
    x0, y0, x1, y1 = box
    dx, dy = slack * (x1 - x0), slack * (y1 - y0)
    return bool(((pts[:, 0] >= x0 - dx) & (pts[:, 0] <= x1 + dx)
                 & (pts[:, 1] >= y0 - dy) & (pts[:, 1] <= y1 + dy)).all())
