"""Bad input to `edgepose-tools quantize` with TF.js models: one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.faults.harness import Case, assert_one_line, run_case

TFJS = "{shared}/models/tfjs/movenet-multipose"
Q = ["edgepose-tools", "quantize", TFJS, "--representative", "{shared}/images", "--decoder", "multipose",
     "--schema", "coco17", "--output", "{tmp}/out/mp_int8.tflite", "--no-progress"]


def _out_dir(tmp: Path) -> None:
    (tmp / "out").mkdir()


def _nothing_written(tmp: Path) -> None:
    assert list((tmp / "out").iterdir()) == []


def _bad_json(tmp: Path) -> None:
    _out_dir(tmp)
    (tmp / "m").mkdir()
    (tmp / "m" / "model.json").write_text('{"format": "graph-model", "modelTopology": ')


CASES = [
    Case("tfjs-unknown-output", Q + ["--outputs", "StatefulPartitionedCall/nope"], 2,
         r"no tensor named 'StatefulPartitionedCall/nope'.*give node names from model.json to --outputs",
         setup=_out_dir, check=_nothing_written),
    Case("tfjs-input-size-not-hxw", Q + ["--input-size", "256"], 2, r"--input-size.*'256': expected HEIGHTxWIDTH",
         setup=_out_dir, check=_nothing_written),
    Case("tfjs-outputs-empty", Q + ["--outputs", " , "], 2, r"--outputs.*give tensor names separated by commas",
         setup=_out_dir, check=_nothing_written),
    Case("tfjs-clip-reversed", Q + ["--clip", "a=2:-2"], 2, r"--clip.*'a=2:-2': expected NAME=LO:HI with LO < HI",
         setup=_out_dir, check=_nothing_written),
    Case("tfjs-damaged-model-json", ["edgepose-tools", "quantize", "{tmp}/m", *Q[3:]], 2,
         r"m/model.json is not a readable TF.js model.json", setup=_bad_json, check=_nothing_written),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tfjs_fault(case: Case, tmp_path: Path) -> None:
    if not (SHARED / "models" / "tfjs").is_dir():
        pytest.skip(f"{SHARED / 'models' / 'tfjs'} not found: set EDGEPOSE_SHARED")
    if case.setup is not None:
        case.setup(tmp_path)
    assert_one_line(case, run_case(case, tmp_path, timeout=300))  # TensorFlow loads slowly on a busy CI box
    if case.check is not None:
        case.check(tmp_path)
