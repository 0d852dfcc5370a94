from __future__ import annotations

import numpy as np
import pytest

from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.core.schemas import COCO17, MPII16, MPII_TO_COCO, Coco, Mpii, get_schema


def _poses(n: int = 3) -> Poses:
    rng = np.random.default_rng(1)
    return Poses(rng.uniform(0, 100, (n, 17, 2)), rng.uniform(0, 1, (n, 17)),
                 np.linspace(0.9, 0.1, n), track_ids=np.arange(n))


def test_slicing_by_index_slice_and_mask() -> None:
    p = _poses()
    assert len(p[0]) == 1 and p[0].track_ids.tolist() == [0]
    assert len(p[1:]) == 2
    sel = p[p.pose_scores > 0.4]
    assert len(sel) == 2 and sel.track_ids.tolist() == [0, 1]
    assert len(p.above(0.95)) == 0
    assert len(Poses.concat([p, p[1:]])) == 5


def test_validation() -> None:
    with pytest.raises(ValueError, match="scores"):
        Poses(np.zeros((1, 17, 2)), np.zeros((1, 16)), np.zeros(1))
    with pytest.raises(ValueError, match="schema"):
        Poses(np.zeros((1, 16, 2)), np.zeros((1, 16)), np.zeros(1), schema="coco17")
    assert len(Poses(np.zeros((1, 16, 2)), np.zeros((1, 16)), np.zeros(1), schema="mpii16")) == 1
    assert len(Poses.empty("mpii16")) == 0 and Poses.empty().num_keypoints == 17


def test_coco_results_load_in_pycocotools() -> None:
    pycoco = pytest.importorskip("pycocotools.coco")
    p = _poses(2)
    gt = pycoco.COCO()
    gt.dataset = {
        "images": [{"id": 7, "width": 100, "height": 100}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 100, 100],
                         "area": 10000, "iscrowd": 0, "num_keypoints": 17,
                         "keypoints": [1.0, 1.0, 2] * 17}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names),
                        "skeleton": [[a + 1, b + 1] for a, b in COCO17.edges]}],
    }
    gt.createIndex()
    res = gt.loadRes(p.to_coco_results(7))
    anns = res.loadAnns(res.getAnnIds())
    assert len(anns) == 2
    np.testing.assert_allclose(np.array(anns[0]["keypoints"]).reshape(17, 3)[:, :2], p.xy[0], atol=1e-3)


def test_records_and_boxes() -> None:
    p = _poses(1)
    rec = p.to_records()[0]
    assert rec["keypoints"][0]["name"] == "nose" and rec["track_id"] == 0
    box = p.boxes()[0]
    assert box[0] == pytest.approx(p.xy[0, :, 0].min()) and box[3] == pytest.approx(p.xy[0, :, 1].max())


def test_schemas() -> None:
    assert COCO17.num_keypoints == 17 and MPII16.num_keypoints == 16
    assert get_schema("COCO17") is COCO17
    with pytest.raises(ConfigError):
        get_schema("h36m")
    flip = COCO17.flip_index()
    assert flip[Coco.LEFT_WRIST] == Coco.RIGHT_WRIST and flip[Coco.NOSE] == Coco.NOSE
    assert (flip[flip] == np.arange(17)).all()
    mflip = MPII16.flip_index()
    assert mflip[Mpii.RIGHT_ANKLE] == Mpii.LEFT_ANKLE and mflip[Mpii.PELVIS] == Mpii.PELVIS
    assert len(COCO17.edges) == 19 and len(MPII16.edges) == 15
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in COCO17.edges)
    assert len(COCO17.edge_colors) == len(COCO17.edges)
    # the mapping joins joints with the same name
    assert all(Mpii(m).name == Coco(c).name for m, c in MPII_TO_COCO.items())
