"""Training a tiny model on the shared COCO dev set: loss goes down, export, resume, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import ConfigError
from edgepose.models.manifest import load_manifest
from tests.conftest import shared_path
from tests.tools.cli_helpers import run_subcommand
from tools import train as train_cli
from tools.train import TrainConfig, TrainResult, train


def _config(shards: Path, out: Path, **changes: object) -> TrainConfig:
    cfg = TrainConfig(train_data=[str(shards)], val_data=[str(shards)], out_dir=str(out), schema="coco17",
                      input_size=(128, 128), alpha=0.35, head_filters=32, batch_size=4, epochs=3,
                      steps_per_epoch=4, val_steps=2, learning_rate=3e-3, seed=0, verbose=0)
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.data.coco import read_coco
    from tools.data.tfrecords import write_tfrecords

    out = tmp_path_factory.mktemp("coco") / "shards"
    write_tfrecords(read_coco(shared_path("data", "coco17_dev", "person_keypoints.json")), out,
                    num_shards=2, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, TrainResult]:
    cfg = _config(shards, tmp_path_factory.mktemp("run") / "out")
    return cfg, train(cfg)


@pytest.mark.slow
def test_loss_decreases(trained: tuple[TrainConfig, TrainResult]) -> None:
    _, result = trained
    loss = result.history["loss"]
    assert len(loss) == 3 and loss[-1] < loss[0]
    assert len(result.history["val_loss"]) == 3


@pytest.mark.slow
def test_export_is_batch1_with_trained_weights_and_manifest(
    trained: tuple[TrainConfig, TrainResult], shards: Path
) -> None:
    import keras

    from tools.data.pipeline import representative_images

    cfg, result = trained
    exported = keras.models.load_model(result.keras_path)
    assert tuple(exported.input.shape) == (1, 128, 128, 3)
    assert tuple(exported.output.shape) == (1, 32, 32, 17)
    assert (result.saved_model_dir / "saved_model.pb").is_file()
    best = keras.models.load_model(Path(cfg.out_dir) / "checkpoints" / "best.keras")
    crop = next(representative_images(shards, (128, 128), count=1))
    assert crop.dtype == np.uint8 and crop.shape == (128, 128, 3)
    x = crop[None].astype(np.float32)
    np.testing.assert_allclose(exported.predict(x, verbose=0), best.predict(x, verbose=0), atol=1e-5)
    # The SavedModel serves the same inference-mode model (BatchNorm on its moving statistics),
    # with the static batch of 1 the Edge TPU compiler needs.
    import tensorflow as tf

    serve = tf.saved_model.load(str(result.saved_model_dir)).signatures["serving_default"]
    assert serve.structured_input_signature[1]["image"].shape == (1, 128, 128, 3)
    (served,) = serve(image=tf.constant(x)).values()
    np.testing.assert_allclose(served.numpy(), exported.predict(x, verbose=0), atol=1e-4)
    m = load_manifest(result.manifest_path)
    assert (m.file, m.input_size, m.schema, m.decoder, m.device) == (
        result.keras_path.name, (128, 128), "coco17", "heatmap", "cpu")
    assert m.decoder_params == {} and m.mean is None  # raw pixels; the heatmap decoder's defaults
    assert (Path(cfg.out_dir) / "history.csv").read_text().count("\n") == 4


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(
    trained: tuple[TrainConfig, TrainResult], tmp_path: Path
) -> None:
    import keras

    cfg, _ = trained
    out = tmp_path / "out"
    shutil.copytree(cfg.out_dir, out)
    last = keras.models.load_model(out / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations) == 12  # 3 epochs x 4 steps
    result = train(_config(Path(cfg.train_data[0]), out, epochs=4, resume=True, val_data=None))
    assert result.initial_epoch == 3 and len(result.history["loss"]) == 1
    resumed = keras.models.load_model(out / "checkpoints" / "last.keras")
    assert int(resumed.optimizer.iterations) == 16
    assert (out / "history.csv").read_text().count("\n") == 5


@pytest.mark.parametrize(("case", "message"), [
    ("missing dataset", "no TFRecord shards found"),
    ("output in a missing directory", "does not exist"),
])
def test_bad_inputs_exit_2(case: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = str(tmp_path / "no-shards"), str(tmp_path / "out")
    if case == "output in a missing directory":
        (tmp_path / "s").mkdir()
        (tmp_path / "s" / "a.tfrecord").write_bytes(b"")
        data, out = str(tmp_path / "s"), str(tmp_path / "missing" / "out")
    assert run_subcommand(train_cli, ["train", "--train", data, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(("change", "message"), [
    ({"steps_per_epoch": 0}, "steps_per_epoch = 0"),  # Keras would treat 0 as "no limit" and never stop
    ({"val_steps": 0}, "val_steps = 0"),
    ({"sigma": 0.0}, "sigma = 0.0"),
    ({"learning_rate": -1e-3}, "learning_rate = -0.001"),
])
def test_out_of_range_numbers_are_config_errors(change: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        train(_config(tmp_path / "no-shards", tmp_path / "out", **change))


@pytest.mark.parametrize("flag", ["--steps-per-epoch", "--batch-size", "--sigma", "--lr"])
def test_cli_rejects_non_positive_numbers(flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        run_subcommand(train_cli, ["train", "--train", str(tmp_path), "--out", str(tmp_path / "o"), flag, "0"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and flag in err


@pytest.mark.slow
@pytest.mark.parametrize(("case", "message"), [
    ("shards of another schema", "17 joints (coco17), not the 16 of schema mpii16; pass --schema coco17"),
    ("not a TFRecord", "is not a TFRecord of people"),
    ("output cannot be created", "File name too long"),
])
def test_bad_shards_and_outputs_exit_2_before_training(case: str, message: str, shards: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data, out, schema = str(shards), str(tmp_path / "out"), "coco17"
    if case == "shards of another schema":
        schema = "mpii16"
    elif case == "not a TFRecord":
        data = shared_path("data", "mpii_sample", "test_mpii.json")
    else:
        out = str(tmp_path / ("x" * 300))
    argv = ["train", "--train", str(data), "--out", out, "--schema", schema, "--input-size", "64"]
    assert run_subcommand(train_cli, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize("text,expected", [
    ('{"epoch": 3}', 3), ("{not json", None), ('{"step": 3}', None), ('{"epoch": -1}', None),
    ('{"epoch": "3"}', None),
])
def test_resume_state_is_validated(tmp_path: Path, text: str, expected: int | None) -> None:
    from tools.errors import DataError
    from tools.train import _resume_epoch

    state = tmp_path / "state.json"
    state.write_text(text)
    if expected is None:
        with pytest.raises(DataError, match="cannot resume: .*state.json is damaged"):
            _resume_epoch(state)
    else:
        assert _resume_epoch(state) == expected
    assert _resume_epoch(tmp_path / "absent.json") == 0
