"""The whole dev-PC path on real data: MPII sample → TFRecords → train → export →
int8 quantize with real images → Edge TPU check → the runtime loads it by its manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import load_rgb, shared_path


@pytest.mark.slow
def test_train_quantize_check_and_run(tmp_path: Path) -> None:
    from edgepose.inference.engine import open_engine
    from tools.check import check_model
    from tools.data.mpii import read_mpii
    from tools.data.tfrecords import write_tfrecords
    from tools.quantize import quantize
    from tools.train import TrainConfig, train

    mpii = shared_path("data", "mpii_sample")
    shards = tmp_path / "shards"
    write_tfrecords(read_mpii(mpii / "test_mpii.json", mpii), shards, num_shards=1, workers=1, progress=False)

    cfg = TrainConfig(train_data=[str(shards)], out_dir=str(tmp_path / "run"), schema="mpii16",
                      input_size=(96, 96), alpha=0.35, head_filters=16, batch_size=4, epochs=3,
                      steps_per_epoch=3, learning_rate=3e-3, seed=1, verbose=0, name="tiny_mpii")
    result = train(cfg)
    loss = result.history["loss"]
    assert loss[-1] < loss[0], loss

    # The SavedModel export, with no --decoder/--schema: train's manifest next to it is found.
    q = quantize(result.saved_model_dir, shared_path("images"), tmp_path / "tiny_mpii_int8.tflite",
                 num_samples=12, held_out=3, progress=False)
    assert q.model_path.is_file() and q.manifest_path == q.model_path.with_suffix(".toml")
    assert q.figure_path.is_file() and len(q.report["outputs"]) == 1

    report = check_model(q.model_path)
    assert report.fully_mapped, [p for p in report.problems]

    engine = open_engine(q.model_path, "cpu")  # found through its sidecar manifest
    assert engine.spec.manifest.schema == "mpii16" and engine.input_dtype == np.uint8
    image = load_rgb(shared_path("images", "coral_squat.bmp"))
    poses = engine.infer(image)
    assert len(poses) == 1 and poses.num_keypoints == 16
    # an untrained model may point anywhere on its letterboxed input: that canvas, mapped
    # back to source pixels, bounds every keypoint
    _, transform = engine.preprocess(image)
    lo, hi = transform.to_source([[0, 0], [96, 96]])
    assert np.isfinite(poses.xy).all()
    assert (poses.xy >= lo - 1e-3).all() and (poses.xy <= hi + 1e-3).all()
