"""COCO keypoints reader: 17-joint samples, v = 0 invisible, shards written and read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from tests.tools.cli_helpers import run_subcommand
from tools import dataset
from tools.data.coco import read_coco


@pytest.fixture
def coco_json() -> Path:
    return shared_path("data", "coco17_dev", "person_keypoints.json")


def test_read_coco_dev(coco_json: Path) -> None:
    anns = json.loads(coco_json.read_text())["annotations"]
    samples = read_coco(coco_json)
    assert len(samples) == len(anns) == 19
    for s, a in zip(samples, anns):
        kp = np.asarray(a["keypoints"], dtype=np.float32).reshape(17, 3)
        assert s.schema == "coco17" and s.joints.shape == (17, 2)
        np.testing.assert_allclose(s.joints, kp[:, :2])
        np.testing.assert_array_equal(s.visibility, kp[:, 2] > 0)
        assert s.visibility.sum() == a["num_keypoints"]
        x, y, w, h = a["bbox"]
        np.testing.assert_allclose(s.center, [x + w / 2, y + h / 2], rtol=1e-5)
        assert s.scale * 200 == pytest.approx(max(w, h), rel=1e-5)
    assert any(s.visibility.min() == 0 for s in samples), "the dev set has unlabelled (v=0) joints"


@pytest.mark.slow
def test_coco_shards_written_in_parallel_and_read_back(coco_json: Path, tmp_path: Path) -> None:
    from tools.data.pipeline import make_dataset
    from tools.data.tfrecords import write_tfrecords

    samples = read_coco(coco_json)
    paths = write_tfrecords(samples, tmp_path / "coco", prefix="val", num_shards=2, workers=2, progress=False)
    assert [p.name for p in paths] == ["val-00000-of-00002.tfrecord", "val-00001-of-00002.tfrecord"]
    batches = list(make_dataset(paths, "coco17", input_size=(128, 128), heatmap_size=(32, 32),
                                batch_size=8, with_meta=True))
    images = np.concatenate([b[0].numpy() for b in batches])
    heatmaps = np.concatenate([b[1].numpy() for b in batches])
    vis = np.concatenate([b[2]["visibility"].numpy() for b in batches])
    assert images.shape == (19, 128, 128, 3) and heatmaps.shape == (19, 32, 32, 17)
    assert images.max() > 100  # real pixels, not a blank crop
    # every labelled joint lies inside its 1.25x bbox crop; unlabelled ones have empty maps
    assert vis.sum() == sum(s.visibility.sum() for s in samples)
    assert np.array_equal(heatmaps.max(axis=(1, 2)) > 0, vis > 0)


def test_wrong_joint_count_exits_2(coco_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(coco_json.read_text())
    data["annotations"][3]["keypoints"] = data["annotations"][3]["keypoints"][:48]  # 16 joints
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    argv = ["dataset", "--format", "coco", "--annotations", str(bad), "--images", str(coco_json.parent / "images"),
            "--out", str(tmp_path / "out")]
    assert run_subcommand(dataset, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "annotation 3" in err and "16 keypoints, expected 17" in err
