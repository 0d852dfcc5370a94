"""Sharded TFRecord writing: names, distribution, round trip of the annotation fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from tools.data.mpii import read_mpii
from tools.data.tfrecords import write_tfrecords
from tools.errors import DataError


@pytest.mark.slow
def test_round_trip_keeps_annotations_and_image_bytes(tmp_path: Path) -> None:
    import tensorflow as tf

    from tools.data.pipeline import parse_example, resolve_shards

    samples = read_mpii(shared_path("data", "mpii_sample", "test_mpii.json"))
    paths = write_tfrecords(samples, tmp_path / "s", num_shards=3, workers=1, progress=False)
    assert len(paths) == 3 and resolve_shards(tmp_path / "s") == [str(p) for p in paths]
    recs = [parse_example(r) for r in tf.data.TFRecordDataset([str(p) for p in paths])]
    assert len(recs) == 5
    by_center = {tuple(s.center): s for s in samples}
    for rec in recs:
        s = by_center[tuple(rec["center"].numpy())]
        np.testing.assert_allclose(rec["joints"].numpy(), s.joints)
        np.testing.assert_array_equal(rec["visibility"].numpy(), s.visibility)
        assert rec["scale"].numpy() == pytest.approx(s.scale) and rec["schema"].numpy() == b"mpii16"
        from PIL import Image

        with Image.open(s.image_path) as im:
            assert rec["image"].shape == (im.height, im.width, 3)


@pytest.mark.parametrize(("setup", "message"), [
    ("parent missing", "does not exist"),
    ("out is a file", "is a file"),
    ("no samples", "no samples"),
])
def test_bad_outputs_raise_data_error(setup: str, message: str, tmp_path: Path) -> None:
    samples = read_mpii(shared_path("data", "mpii_sample", "test_mpii.json"))
    out = tmp_path / "shards"
    if setup == "parent missing":
        out = tmp_path / "missing" / "shards"
    elif setup == "out is a file":
        out.write_text("x")
    elif setup == "no samples":
        samples = []
    with pytest.raises(DataError, match=message):
        write_tfrecords(samples, out, workers=1, progress=False)


def test_no_shards_found_names_the_path(tmp_path: Path) -> None:
    from tools.data.pipeline import resolve_shards

    with pytest.raises(DataError, match=f"no TFRecord shards found at {tmp_path}"):
        resolve_shards(tmp_path)
