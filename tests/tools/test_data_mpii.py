"""MPII reader and the MPII path through TFRecords and tf.data (tutorial semantics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.schemas import MPII16, Mpii
from tests.conftest import shared_path
from tests.tools.cli_helpers import run_subcommand
from tools import dataset
from tools.data.mpii import read_mpii
from tools.errors import DataError


@pytest.fixture
def mpii_json() -> Path:
    return shared_path("data", "mpii_sample", "test_mpii.json")


def test_read_mpii_sample(mpii_json: Path) -> None:
    raw = json.loads(mpii_json.read_text())
    samples = read_mpii(mpii_json)
    assert len(samples) == len(raw) == 5
    for s, r in zip(samples, raw):
        assert s.schema == "mpii16" and s.joints.shape == (16, 2)
        np.testing.assert_allclose(s.joints, r["joints"])
        np.testing.assert_array_equal(s.visibility, np.asarray(r["joints_vis"]) > 0)
        assert s.scale == pytest.approx(r["scale"]) and Path(s.image_path).is_file()
    # two people in the sample have both ankles unlabelled
    assert sum(s.visibility[Mpii.RIGHT_ANKLE] == 0 for s in samples) == 2


def _expected_heatmap_xy(rec: dict, input_size: int = 256, heatmap_size: int = 64) -> np.ndarray:
    """The tutorial crop: a square box of scale*200*1.25 px around center, corners on pixel centres."""
    side = rec["scale"] * 200 * 1.25
    corner = np.asarray(rec["center"]) - side / 2
    xy_in = (np.asarray(rec["joints"]) - corner) * (input_size - 1) / side
    return xy_in * heatmap_size / input_size  # what edgepose's heatmap decoder inverts


@pytest.fixture(scope="module")
def mpii_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.data.tfrecords import write_tfrecords

    samples = read_mpii(shared_path("data", "mpii_sample", "test_mpii.json"))
    out = tmp_path_factory.mktemp("mpii") / "shards"
    write_tfrecords(samples, out, num_shards=2, workers=1, progress=False)
    return out


@pytest.mark.slow
def test_mpii_heatmaps_follow_the_tutorial(mpii_json: Path, mpii_shards: Path) -> None:
    from tools.data.pipeline import make_dataset

    raw = json.loads(mpii_json.read_text())
    ds = make_dataset(mpii_shards, "mpii16", input_size=(256, 256), heatmap_size=(64, 64), sigma=1.0,
                      batch_size=5, with_meta=True)
    images, heatmaps, meta = next(iter(ds))
    heatmaps = heatmaps.numpy()
    assert images.shape == (5, 256, 256, 3) and heatmaps.shape == (5, 64, 64, 16)
    # shards interleave people; match each crop to its record by its joints
    for b in range(5):
        joints = meta["joints"].numpy()[b]
        rec = min(raw, key=lambda r: np.abs(_expected_heatmap_xy(r) - joints / 4).sum())
        expected = _expected_heatmap_xy(rec)
        for k in range(16):
            hm = heatmaps[b, :, :, k]
            if not rec["joints_vis"][k]:
                assert not hm.any(), f"invisible joint {k} must have an all-zero heatmap"
                continue
            y, x = np.unravel_index(hm.argmax(), hm.shape)
            assert abs(x - expected[k, 0]) <= 1 and abs(y - expected[k, 1]) <= 1
            # sigma = 1 heatmap pixel: the second moment of the (3-sigma truncated) patch
            ys, xs = np.mgrid[:64, :64]
            w = hm / hm.sum()
            sx = np.sqrt((w * (xs - (w * xs).sum()) ** 2).sum())
            assert 0.8 < sx < 1.1
            assert 0.75 < hm.max() <= 1.0


@pytest.mark.slow
def test_flip_swaps_left_and_right(mpii_shards: Path) -> None:
    from tools.data.pipeline import make_dataset

    def run(augment: bool) -> tuple[np.ndarray, ...]:
        out = [(i.numpy(), h.numpy(), m["joints"].numpy(), m["visibility"].numpy())
               for i, h, m in make_dataset(mpii_shards, "mpii16", batch_size=5, augment=augment, with_meta=True)]
        return tuple(np.concatenate(parts) for parts in zip(*out))

    image, heat, joints, vis = run(False)
    fi = MPII16.flip_index()
    assert fi[Mpii.LEFT_ANKLE] == Mpii.RIGHT_ANKLE and fi[Mpii.PELVIS] == Mpii.PELVIS
    mirrored_xy = np.stack([255.0 - joints[:, fi, 0], joints[:, fi, 1]], axis=-1)
    flipped_seen = plain_seen = 0
    for _ in range(4):
        a_image, a_heat, a_joints, a_vis = run(True)
        for i in range(len(image)):
            if np.allclose(a_joints[i], joints[i], atol=1e-3):
                plain_seen += 1
                np.testing.assert_allclose(a_heat[i], heat[i], atol=1e-5)
                continue
            flipped_seen += 1
            np.testing.assert_allclose(a_image[i], image[i, :, ::-1], atol=1e-3)
            np.testing.assert_allclose(a_joints[i], mirrored_xy[i], atol=1e-3)
            np.testing.assert_array_equal(a_vis[i], vis[i, fi])
            # the left-ankle map of a flipped crop peaks where the right ankle was mirrored to
            if a_vis[i, Mpii.LEFT_ANKLE]:
                y, x = np.unravel_index(a_heat[i, :, :, Mpii.LEFT_ANKLE].argmax(), (64, 64))
                rx, ry = mirrored_xy[i, Mpii.LEFT_ANKLE] / 4
                assert abs(x - rx) <= 1 and abs(y - ry) <= 1
    assert flipped_seen and plain_seen


def _write(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records))
    return path


def _argv(name: str, tmp: Path, src: Path) -> list[str]:
    raw = json.loads(src.read_text())
    ann, images, out = str(src), str(src.parent), str(tmp / "out")
    if name == "missing dataset":
        ann = str(tmp / "nope" / "test_mpii.json")
    elif name == "wrong joint count":
        raw[1]["joints"] = raw[1]["joints"][:15]
        raw[1]["joints_vis"] = raw[1]["joints_vis"][:15]
        ann = str(_write(tmp / "bad.json", raw))
    elif name == "missing images":
        images = str(tmp)
    elif name == "output in a missing directory":
        out = str(tmp / "missing" / "out")
    elif name == "annotations given as a folder":
        ann = str(src.parent)
    elif name == "output cannot be created":
        out = str(tmp / ("x" * 300))  # the OS refuses the name: a one-line error, not a traceback
    return ["dataset", "--format", "mpii", "--annotations", ann, "--images", images, "--out", out,
            "--workers", "1", "--no-progress"]


@pytest.mark.parametrize(("case", "message"), [
    ("missing dataset", "not found"),
    ("wrong joint count", "15 joints"),
    ("missing images", "5 annotated image(s) missing"),
    ("output in a missing directory", "does not exist"),
    ("annotations given as a folder", "is a folder; pass the annotation JSON file"),
    ("output cannot be created", "File name too long"),
])
def test_bad_inputs_exit_2_with_one_line(case: str, message: str, mpii_json: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run_subcommand(dataset, _argv(case, tmp_path, mpii_json)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("edgepose-tools: error:")


def test_reader_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected a non-empty JSON list"):
        read_mpii(_write(tmp_path / "empty.json", []))
