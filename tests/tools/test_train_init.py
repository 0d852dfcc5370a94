"""Training that starts from something: --init (a checkpoint), --pretrained (backbone
weights: ImageNet or a local file), and the cluster read from $TF_CONFIG."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import ConfigError
from tests.conftest import REPO
from tests.tools.test_train import _config, shards, trained  # noqa: F401 (fixtures)
from tools.distribute import read_tf_config, worker_out_dir
from tools.errors import DataError
from tools.train import TrainConfig, TrainResult, initial_model, train


def _backbone(model: object) -> object:
    return next(layer for layer in model.layers if layer.name.startswith("mobilenetv2"))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_init_starts_from_the_checkpoint_and_the_loss_continues(
        trained: tuple[TrainConfig, TrainResult], shards: Path, tmp_path: Path) -> None:  # noqa: F811
    import keras

    first_cfg, first = trained
    ckpt = Path(first_cfg.out_dir) / "checkpoints" / "last.keras"
    cfg = _config(shards, tmp_path / "ft", init=str(ckpt), epochs=2, val_data=None)
    model, epoch = initial_model(cfg, tmp_path / "none.keras", tmp_path / "none.json")
    saved = keras.models.load_model(ckpt, compile=False).get_weights()
    assert epoch == 0 and len(model.get_weights()) == len(saved)
    for got, want in zip(model.get_weights(), saved):
        np.testing.assert_array_equal(got, want)
    result = train(cfg)
    before, after = first.history["loss"], result.history["loss"]
    print(f"loss of the first run {before}, of the run from its checkpoint {after}")
    # a new run (epoch 0, fresh optimizer) that goes on from where the first ended:
    # nearer its last loss than its first, and below a from-scratch first epoch
    assert result.initial_epoch == 0 and len(after) == 2
    assert after[0] < before[0] and abs(after[0] - before[-1]) < abs(after[0] - before[0]), (before, after)


@pytest.mark.slow
def test_pretrained_path_loads_the_backbone(shards: Path, tmp_path: Path) -> None:  # noqa: F811
    import keras

    bb = keras.applications.MobileNetV2(input_shape=(128, 128, 3), alpha=0.35, include_top=False, weights=None)
    weights = [w + 0.25 for w in bb.get_weights()]  # not what a random init would give
    bb.set_weights(weights)
    path = tmp_path / "mnv2_035_128.weights.h5"
    bb.save_weights(path)
    cfg = _config(shards, tmp_path / "out", pretrained=str(path))
    model, _ = initial_model(cfg, tmp_path / "none.keras", tmp_path / "none.json")
    got = _backbone(model).get_weights()
    assert len(got) == len(weights)
    for g, w in zip(got, weights):
        np.testing.assert_array_equal(g, w)
    plain, _ = initial_model(_config(shards, tmp_path / "out"), tmp_path / "none.keras", tmp_path / "none.json")
    assert not np.array_equal(_backbone(plain).get_weights()[0], weights[0])


@pytest.mark.slow
def test_pretrained_imagenet_offline_is_one_line(shards: Path, tmp_path: Path) -> None:  # noqa: F811
    """No internet (a proxy on a closed port stands in for it), no cached weights: one line."""
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "tools.cli", "train", "--train", str(shards), "--out", str(tmp_path / "out"),
         "--schema", "coco17", "--input-size", "128", "--alpha", "0.35", "--pretrained", "imagenet",
         "--epochs", "1"], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, lines
    assert "--pretrained imagenet: cannot download the MobileNetV2 ImageNet weights" in lines[0]
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_128_no_top.h5" in lines[0]
    assert re.search(r"no_top\.h5 \(.*(refused|[Ee]rrno).*\); without internet, fetch https://", lines[0]), lines[0]
    assert "--pretrained PATH" in lines[0]


@pytest.mark.slow
def test_init_of_another_architecture_is_one_line(trained: tuple[TrainConfig, TrainResult], shards: Path,  # noqa: F811
                                                  tmp_path: Path) -> None:
    first_cfg, _ = trained
    ckpt = Path(first_cfg.out_dir) / "checkpoints" / "last.keras"
    cfg = _config(shards, tmp_path / "ft", init=str(ckpt), head_filters=16)
    with pytest.raises(DataError, match=r"--init .*last\.keras: its weights do not fit"):
        initial_model(cfg, tmp_path / "none.keras", tmp_path / "none.json")


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"init": "nope.keras"}, DataError, r"--init nope\.keras: no such file"),
    ({"pretrained": "nope.h5"}, DataError, r"--pretrained nope\.h5: no such file"),
    ({"init": "x.keras", "resume": True}, ConfigError, "use one"),
    ({"model": "hourglass", "pretrained": "imagenet"}, ConfigError, "hourglass has no ImageNet backbone"),
])
def test_bad_starting_points(change: dict[str, object], error: type, message: str, tmp_path: Path) -> None:
    (tmp_path / "x.keras").write_bytes(b"")
    os.chdir(tmp_path)
    cfg = _config(tmp_path / "no-shards", tmp_path / "out", **change)
    with pytest.raises(error, match=message):
        if "hourglass" in str(change.get("model")):
            initial_model(cfg, tmp_path / "none.keras", tmp_path / "none.json")
        else:
            train(cfg)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "TF_CONFIG is not a cluster description"),
    ('{"cluster": {"worker": ["a:1"]}}', r"TF_CONFIG is not a cluster description \(KeyError"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task worker:1 is not in"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task ps:0 is not in"),
])
def test_bad_tf_config(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_tf_config(text)


def test_chief_and_worker_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    two = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": %d}}'
    c0, c1 = read_tf_config(two % 0), read_tf_config(two % 1)
    assert c0 is not None and c1 is not None and (c0.workers, c0.chief, c1.chief) == (2, True, False)
    chief = read_tf_config('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}')
    assert chief is not None and chief.workers == 2 and not chief.chief
    monkeypatch.setenv("TF_CONFIG", two % 1)
    assert worker_out_dir(tmp_path) == tmp_path / "worker1"
    monkeypatch.setenv("TF_CONFIG", two % 0)
    assert worker_out_dir(tmp_path) == tmp_path
    monkeypatch.delenv("TF_CONFIG")
    assert worker_out_dir(tmp_path) == tmp_path


@pytest.mark.slow
def test_tf_config_gives_the_multi_worker_strategy() -> None:
    """A one-machine cluster on a free local port: the real MultiWorkerMirroredStrategy."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                                      "task": {"type": "worker", "index": 0}})}
    code = ("from tools.distribute import strategy; s = strategy(); "
            "print(type(s).__name__, s.num_replicas_in_sync, s.cluster_resolver.task_type)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["CollectiveAllReduceStrategy", "1", "worker"]
