"""`edgepose detect` and `edgepose-run` keep the same poses by default; help text of on/off flags."""

from __future__ import annotations

import re

import pytest

from edgepose.app.config import RunConfig
from edgepose.cli.main import build_parser
from edgepose.core.pose import KEYPOINT_THRESHOLD, POSE_THRESHOLD


def test_detect_and_run_share_the_thresholds() -> None:
    args = build_parser().parse_args(["detect", "image.jpg"])
    cfg = RunConfig()
    assert args.pose_threshold == cfg.pose_threshold == POSE_THRESHOLD > 0
    assert args.keypoint_threshold == cfg.keypoint_threshold == KEYPOINT_THRESHOLD


def test_on_off_flags_show_no_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["detect", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    crops = text[text.index("--no-crops "):text.index("--json ")]
    assert "default" not in crops  # not "(default: True)" on a flag that turns crops off
    assert re.search(rf"--pose-threshold POSE_THRESHOLD .*\(default: {POSE_THRESHOLD}\)", text)
