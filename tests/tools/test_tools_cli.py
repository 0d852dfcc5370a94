"""The edgepose-tools entry point: subcommands, help, usage errors."""

from __future__ import annotations

import pytest

from tools.cli import SUBCOMMANDS, build_parser, main


def test_every_subcommand_is_registered() -> None:
    names = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert names == {"dataset", "train", "quantize", "check", "compile", "evaluate", "build"}
    assert len(SUBCOMMANDS) == len(names)


@pytest.mark.parametrize("argv", [
    [], ["nope"], ["check"], ["quantize", "m.keras"], ["build", "m.keras"], ["build", "m.keras", "--samples", "0"], ["compile", "--num-segments", "x", "m"],
    ["compile", "m.tflite", "--num-segments", "0"],
    ["dataset", "--format", "mpii", "--annotations", "a.json", "--out", "o", "--shards", "0"],
    ["dataset", "--format", "mpii", "--annotations", "a.json", "--out", "o", "--workers", "-1"],
    ["quantize", "m.keras", "--representative", "r", "--held-out", "0"],
    ["train", "--train", "t", "--out", "o", "--steps-per-epoch", "0"],
])
def test_usage_errors_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose-tools") and err.count("\n") == 1


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("quantize", "check", "compile", "evaluate"))
