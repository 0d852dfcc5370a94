"""`edgepose-tools dataset --ray`: the shards written by Ray tasks (a local Ray started
here) hold the multiprocessing path's records: the same shard files, each with the same
people in the same order. Compared as parsed tf.train.Example protos, not as bytes: an
Example's feature map is serialized in no fixed order, so the bytes differ from one
process to the next even for one writer."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import shared_path
from tests.tools.cli_helpers import run_subcommand
from tools import dataset as dataset_cli
from tools.data.coco import read_coco
from tools.data.mpii import read_mpii
from tools.data.tfrecords import write_tfrecords


@pytest.fixture(scope="module")
def local_ray() -> Iterator[object]:
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'edgepose[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _records(paths: list[Path]) -> list[list[object]]:
    """Every shard's tf.train.Examples, parsed, in file order."""
    import tensorflow as tf

    return [[tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(p))] for p in paths]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mpii", "coco"])
def test_ray_writes_the_multiprocessing_shards(local_ray: object, fmt: str, tmp_path: Path) -> None:
    from tools.data.tfrecords_ray import write_tfrecords_ray

    samples = (read_mpii(shared_path("data", "mpii_sample", "test_mpii.json")) if fmt == "mpii" else
               read_coco(shared_path("data", "coco17_dev", "person_keypoints.json")))
    mp = write_tfrecords(samples, tmp_path / "mp", num_shards=3, workers=2, progress=False)
    rp = write_tfrecords_ray(samples, tmp_path / "ray", num_shards=3, progress=False)
    assert [p.name for p in rp] == [p.name for p in mp]
    assert [p.stat().st_size for p in rp] == [p.stat().st_size for p in mp]
    parsed = _records(rp)
    assert parsed == _records(mp) and sum(map(len, parsed)) == len(samples)
    assert not list((tmp_path / "ray").glob("*.part"))


@pytest.mark.slow
def test_cli_dataset_ray(local_ray: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ann = shared_path("data", "coco17_dev", "person_keypoints.json")
    code = run_subcommand(dataset_cli, ["dataset", "--format", "coco", "--annotations", str(ann),
                                        "--out", str(tmp_path / "s"), "--shards", "2", "--ray", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote 19 people into 2 shard(s)" in out
    assert sum(map(len, _records(sorted((tmp_path / "s").glob("*.tfrecord"))))) == 19


def test_missing_ray_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the package
    ann = shared_path("data", "mpii_sample", "test_mpii.json")
    code = run_subcommand(dataset_cli, ["dataset", "--format", "mpii", "--annotations", str(ann),
                                        "--out", str(tmp_path / "s"), "--ray", "head:6379"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--ray needs Ray, which is not installed; pip install 'edgepose[ray]'" in err
    assert not (tmp_path / "s").exists()
