"""`edgepose models add/remove` with bad input: one line, exit 2, no traceback, and
nothing registered (no manifest in the user folder, no copy in the model cache)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.faults.harness import Case, assert_one_line, run_case

MOVENET = SHARED / "models" / "coral" / "movenet_single_pose_lightning_ptq.tflite"


def _movenet(tmp: Path) -> None:
    shutil.copyfile(MOVENET, tmp / "mine.tflite")


def _text(tmp: Path) -> None:
    (tmp / "notes.tflite").write_text("not a model\n")


CASES = [
    Case("add-missing-file", ["edgepose", "models", "add", "{tmp}/nope.tflite", "--decoder", "movenet",
                              "--schema", "coco17"], 2, r"model file .*nope\.tflite not found"),
    Case("add-not-tflite", ["edgepose", "models", "add", "{tmp}/notes.tflite", "--decoder", "movenet",
                            "--schema", "coco17"], 2, r"notes\.tflite is not a TFLite model", setup=_text),
    Case("add-directory", ["edgepose", "models", "add", "{tmp}", "--decoder", "movenet",
                           "--schema", "coco17"], 2, r"is a directory; give a \.tflite file"),
    Case("add-no-manifest-no-flags", ["edgepose", "models", "add", "{tmp}/mine.tflite"], 2,
         r"mine\.tflite has no manifest .*--decoder", setup=_movenet, needs=("models",)),
    Case("add-builtin-name", ["edgepose", "models", "add", "{tmp}/mine.tflite", "--decoder", "movenet",
                              "--schema", "coco17", "--no-topdown", "--name", "movenet-lightning"], 2,
         r"'movenet-lightning' is a built-in model's name; choose another with --name",
         setup=_movenet, needs=("models",)),
    Case("add-builtin-pipeline-name", ["edgepose", "models", "add", "{tmp}/mine.tflite", "--decoder",
                                       "movenet", "--schema", "coco17", "--name", "movenet-multipose"], 2,
         r"'movenet-multipose' is a built-in model's name", setup=_movenet, needs=("models",)),
    Case("add-unknown-proposer", ["edgepose", "models", "add", "{tmp}/mine.tflite", "--decoder", "movenet",
                                  "--schema", "coco17", "--proposer", "yolo-pose"], 2,
         r"--proposer 'yolo-pose' is not a known model; multi-pose models .*posenet-mobilenet",
         setup=_movenet, needs=("models",)),
    Case("add-single-pose-proposer", ["edgepose", "models", "add", "{tmp}/mine.tflite", "--decoder",
                                      "movenet", "--schema", "coco17", "--proposer", "movenet-lightning"], 2,
         r"--proposer 'movenet-lightning' does not find several people", setup=_movenet, needs=("models",)),
    Case("add-bad-name", ["edgepose", "models", "add", "{tmp}/mine.tflite", "--decoder", "movenet",
                          "--schema", "coco17", "--name", "../evil"], 2, r"--name '\.\./evil': use letters",
         setup=_movenet, needs=("models",)),
    Case("remove-builtin", ["edgepose", "models", "remove", "movenet-lightning"], 2,
         r"'movenet-lightning' is a built-in model; only models added"),
    Case("remove-unknown", ["edgepose", "models", "remove", "nobody"], 2, r"'nobody' is not a user model"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_user_model_faults(case: Case, tmp_path: Path) -> None:
    for rel in case.needs:
        if not (SHARED / rel).exists():
            pytest.skip(f"{SHARED / rel} not found: set EDGEPOSE_SHARED")
    config, cache = tmp_path / "config", tmp_path / "cache"
    case.env = {**case.env, "XDG_CONFIG_HOME": str(config), "EDGEPOSE_CACHE_DIR": str(cache)}
    if case.setup:
        case.setup(tmp_path)
    assert_one_line(case, run_case(case, tmp_path))
    # nothing registered, nothing copied
    assert not config.exists() or not any(config.rglob("*")), list(config.rglob("*"))
    assert not cache.exists() or not any(cache.rglob("*.tflite"))
