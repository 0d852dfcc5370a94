"""``edgepose-run`` with the crop-running estimators on real videos, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgepose.estimators.nms import oks
from tests.conftest import REPO, load_rgb, shared_path

REPEAT = 5
SIDE = 640


def _edgepose_run(*args: str) -> list[dict]:
    out = Path(args[args.index("--json") + 1])
    proc = subprocess.run([sys.executable, "-m", "edgepose.cli.run", "--display", "none",
                           "--device", "cpu", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def _oks(pose: dict, gt: np.ndarray, area: float) -> float:
    """COCO's OKS of one predicted pose against one ground-truth person."""
    xy = np.array([[k["x"], k["y"]] for k in pose["keypoints"]])
    return float(oks(xy, gt[:, :2], area, gt[:, 2] > 0))


@pytest.fixture(scope="module")
def stills_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[np.ndarray, float]]]:
    """Each coco17_dev image showing one person, letterboxed onto a 640x640 canvas and
    held for 5 frames, as an MP4 written by OpenCV; with each frame's ground truth."""
    cv2 = pytest.importorskip("cv2")
    data = shared_path("data", "coco17_dev")
    coco = json.loads((data / "person_keypoints.json").read_text())
    path = tmp_path_factory.mktemp("video") / "stills.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIDE, SIDE))
    truth = []
    for im in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        if len(anns) != 1:
            continue
        image = load_rgb(data / "images" / im["file_name"])
        h, w = image.shape[:2]
        s = SIDE / max(h, w)
        nh, nw = round(h * s), round(w * s)
        ox, oy = (SIDE - nw) // 2, (SIDE - nh) // 2
        canvas = np.zeros((SIDE, SIDE, 3), np.uint8)
        canvas[oy:oy + nh, ox:ox + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        gt = np.array(anns[0]["keypoints"], np.float64).reshape(17, 3)
        gt[:, 0], gt[:, 1] = gt[:, 0] * s + ox, gt[:, 1] * s + oy
        truth.append((gt, anns[0]["area"] * s * s))
        for _ in range(REPEAT):
            writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()
    assert len(truth) == 3
    return path, truth


@pytest.mark.parametrize("model", ["movenet-multipose-fast", "movenet-lightning"])
def test_temporal_crops_on_a_held_image(stills_video: tuple[Path, list], tmp_path: Path, model: str) -> None:
    """From the second frame of each held image on, the crop comes from the previous
    frame's pose. The single-person model sharpens its pose that way (the last frame of
    each image scores a higher OKS than its first); the top-down model's crops are held
    once they converge: the pose never ends below the first frame's and the last two
    frames agree (within 0.01 OKS: the MP4's frames are not bit-identical; identical
    frames are test_accuracy.py's)."""
    video, truth = stills_video
    recs = _edgepose_run("--source", str(video), "--model", model, "--json", str(tmp_path / "o.jsonl"))
    assert len(recs) == REPEAT * len(truth)
    oks = np.array([max((_oks(p, *truth[i // REPEAT]) for p in r["poses"]), default=0.0)
                    for i, r in enumerate(recs)]).reshape(len(truth), REPEAT)
    if model == "movenet-lightning":
        assert oks[:, -1].mean() >= oks[:, 0].mean() + 0.02, oks.round(3)
    else:
        assert (oks[:, -1] >= oks[:, 0] - 0.01).all(), oks.round(3)
        assert (np.abs(oks[:, -1] - oks[:, -2]) <= 0.01).all() and oks.min() >= 0.7, oks.round(3)
    assert all(r["invokes"] >= 1 for r in recs)


@pytest.mark.parametrize("video", ["mmpose_demo.mp4", "pose2sim_singleperson_cam01.mp4",
                                   "pose2sim_singleperson_cam02.mp4", "pose2sim_singleperson_cam03.mp4",
                                   "pose2sim_singleperson_cam04.mp4"])
def test_default_model_runs_the_videos_with_stable_track_ids(video: str, tmp_path: Path) -> None:
    """The whole video with the default model; in the pose2sim scene (one athlete, and in
    two of the views someone standing in the background) each person keeps one id."""
    cv2 = pytest.importorskip("cv2")
    path = shared_path("videos", video)
    recs = _edgepose_run("--source", str(path), "--json", str(tmp_path / "o.jsonl"))
    cap = cv2.VideoCapture(str(path))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert [r["frame"] for r in recs] == list(range(frames))
    assert all(r["poses"] for r in recs)  # somebody in every frame
    ids = Counter(p["track_id"] for r in recs for p in r["poses"])
    if video.startswith("pose2sim"):
        most = max(len(r["poses"]) for r in recs)
        assert len(ids) == most <= 2, ids  # no id ever replaced by a new one
        tallest = {max(r["poses"], key=_height)["track_id"] for r in recs}
        assert len(tallest) == 1  # the person tallest in view is one and the same throughout


def _height(pose: dict) -> float:
    ys = [k["y"] for k in pose["keypoints"] if k["score"] >= 0.3]
    return max(ys) - min(ys) if ys else 0.0
