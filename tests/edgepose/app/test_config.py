"""Config: defaults < TOML file < flags, and one-line ConfigErrors for bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgepose.app.config import RunConfig, build_config, load_toml
from edgepose.core.errors import ConfigError
from tests.conftest import shared_path


def test_defaults_suit_the_embedded_case() -> None:
    cfg = build_config({})
    assert (cfg.source, cfg.display, cfg.device, cfg.model) == (
        "auto", "auto", "auto", "movenet-multipose")


def test_flags_win_over_the_file_which_wins_over_defaults(tmp_path: Path) -> None:
    video = shared_path("videos", "sports2d_demo.mp4")
    toml = tmp_path / "edgepose.toml"
    toml.write_text(
        f'model = "posenet-mobilenet-v1-075-481x641"\nsource = "{video}"\n'
        'display = "none"\nkeypoint-threshold = 0.4\nfps = 15\nmirror = true\njson = "a.jsonl"\n')
    cfg = build_config({"display": "window", "fps": None, "json": "b.jsonl"}, toml)
    assert cfg.model == "posenet-mobilenet-v1-075-481x641"
    assert cfg.source == str(video)
    assert cfg.display == "window"          # flag wins
    assert cfg.json == "b.jsonl"            # flag wins
    assert cfg.fps == 15                    # flag not given (None): file value stays
    assert cfg.keypoint_threshold == 0.4    # dashed TOML keys are accepted
    assert cfg.mirror is True
    assert cfg.width == RunConfig.width     # neither: default


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("flags, toml, match", [
    ({"display": "hdmi"}, None, r"display 'hdmi' is unknown; use one of auto, tv, window, none"),
    ({"keypoint_threshold": -0.1}, None, r"keypoint_threshold -0.1 is out of range"),
    ({"pose_threshold": 1.5}, None, r"pose_threshold 1.5 is out of range"),
    ({"source": "no/such/video.mp4"}, None, r"source file no/such/video.mp4 not found"),
    ({"model": "movenet-huge"}, None, r"unknown model 'movenet-huge'; known models: .*movenet-lightning"),
    ({"model": "missing/model.tflite"}, None, r"model file missing/model.tflite not found"),
    ({"device": "gpu"}, None, r"unknown device 'gpu'"),
    ({"width": 0}, None, r"width 0 is out of range; use 16..16384 pixels"),
    ({"fps": float("nan")}, None, r"fps nan is out of range"),
    ({"fps": float("inf")}, None, r"fps inf is out of range"),
    ({"device": "usb:abc"}, None, r"unknown device 'usb:abc'"),
    ({"model": "<tmp>"}, None, r"model file .* is a directory"),
    ({"max_frames": -1}, None, r"max_frames -1 must be 0"),
    ({"snapshot_every": 5}, None, r"needs a folder: pass --snapshot-dir"),
    ({}, "model = [unclosed\n", r"bad.toml is not valid TOML .*line 1"),
    ({}, "sauce = \"0\"\n", r"unknown key 'sauce'; did you mean 'source'\?"),
    ({}, "fps = \"fast\"\n", r"fps = 'fast' should be an int or float"),
    ({}, "mirror = 1\n", r"mirror = 1 should be a bool"),
    ({}, "display = \"hdmi\"\n", r"display 'hdmi' is unknown"),
])
def test_bad_values_are_one_line_config_errors(tmp_path: Path, flags: dict, toml: str | None,
                                               match: str) -> None:
    flags = {k: str(tmp_path) if v == "<tmp>" else v for k, v in flags.items()}
    with pytest.raises(ConfigError, match=match) as info:
        build_config(flags, _toml(tmp_path, toml) if toml is not None else None)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "absent.toml", "absent.toml not found"),
    (lambda d: (d / "bin.toml").write_bytes(b"model = \"\xff\xfe\"\n") and d / "bin.toml",
     "not valid TOML"),
    (lambda d: d, "is a directory, not a regular file"),
])
def test_unreadable_toml_files(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_toml(make(tmp_path))


def test_the_sample_config_is_generated_from_the_settings_table() -> None:
    """deploy/edgepose.toml is what `python -m edgepose.app.config` prints: every setting,
    its help and default, declared once in RunConfig."""
    from edgepose.app.config import SETTINGS, sample_config
    from tests.conftest import REPO

    text = (REPO / "deploy" / "edgepose.toml").read_text()
    assert text == sample_config(), "regenerate: python -m edgepose.app.config > deploy/edgepose.toml"
    for f in SETTINGS:
        assert f"{f.name} = " in text


def test_flags_are_generated_from_the_settings_table() -> None:
    from edgepose.app.config import SETTINGS
    from edgepose.cli.run import build_parser

    flags = {a.dest for a in build_parser()._actions} - {"help", "config"}
    assert flags == {f.name for f in SETTINGS}


@pytest.mark.parametrize("flags, match", [
    ({"num_threads": 100000}, r"num_threads 100000 is out of range: this machine has \d+ usable core"),
    ({"num_threads": 0}, r"num_threads 0 is out of range"),
    ({"json": ""}, r"json = '' is empty"),
    ({"output": ("",)}, r"output = '' is empty"),
    ({"serve": "0.0.0.0:8080"}, r"binding beyond loopback needs a token"),
    ({"serve": "80800"}, r"expected \[HOST:\]PORT"),
    ({"source": "gopher://x"}, r"scheme gopher:// is not supported"),
])
def test_more_bad_values(flags: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config(flags)


def test_file_urls_and_output_lists(tmp_path: Path) -> None:
    video = shared_path("videos", "mmpose_demo.mp4")
    cfg = build_config({"source": video.as_uri(), "output": ["a.jsonl", "mqtt://h/t"]})
    assert cfg.output == ("a.jsonl", "mqtt://h/t")
    toml = _toml(tmp_path, 'output = ["b.jsonl"]\nsource = 0\n')
    assert load_toml(toml) == {"output": ("b.jsonl",), "source": "0"}
    with pytest.raises(ConfigError, match=r"output = 'b.jsonl' should be a list of strings"):
        load_toml(_toml(tmp_path, 'output = "b.jsonl"\n'))


@pytest.mark.parametrize("flags, match", [
    ({"width": 1_000_000_000_000}, r"width 1000000000000 is out of range; use 16..16384 pixels"),
    ({"height": 2**63 - 1}, r"height 9223372036854775807 is out of range"),
    ({"width": 16384, "height": 16384}, r"width x height 16384x16384 is 268 MP, over edgepose's limit of 50 MP"),
    ({"fps": 1e-9}, r"fps 1e-09 is out of range; use 0.01..1000 frames a second"),
    ({"fps": 1e308}, r"fps 1e\+308 is out of range"),
    ({"invoke_timeout": 1e-6}, r"invoke_timeout 1e-06 is out of range; use 0 \(ten median invokes.*\) or 1..3600"),
    ({"invoke_timeout": float("nan")}, r"invoke_timeout nan is out of range"),
    ({"invoke_timeout": float("inf")}, r"invoke_timeout inf is out of range"),
    ({"invoke_timeout": -1}, r"invoke_timeout -1 is out of range"),
    ({"load_timeout": 0}, r"load_timeout 0 is out of range; use 1..3600 seconds"),
    ({"load_timeout": 1e300}, r"load_timeout 1e\+300 is out of range"),
])
def test_numbers_are_checked_against_what_the_code_can_use(flags: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        build_config({"source": "0", **flags}, check_model=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("flags", [
    {"width": 16, "height": 16}, {"width": 8000, "height": 6000}, {"fps": 0.01}, {"fps": 1000},
    {"invoke_timeout": 0}, {"invoke_timeout": 1}, {"invoke_timeout": 3600}, {"load_timeout": 1},
])
def test_numbers_at_the_ends_of_their_ranges_are_accepted(flags: dict) -> None:
    cfg = build_config({"source": "0", **flags}, check_model=False)
    assert all(getattr(cfg, k) == v for k, v in flags.items())


def test_a_byte_order_mark_is_accepted_and_utf16_named(tmp_path: Path) -> None:
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbffps = 12.5\r\nmirror = true\r\n")  # as Notepad saves it
    assert load_toml(bom) == {"fps": 12.5, "mirror": True}
    utf16 = tmp_path / "utf16.toml"
    utf16.write_text("fps = 12.5\n", encoding="utf-16")
    with pytest.raises(ConfigError, match=r"utf16.toml is not valid TOML: it is UTF-16 text .*save it as UTF-8"):
        load_toml(utf16)


def test_a_config_that_is_no_regular_file_is_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(ConfigError, match=r"c.toml is a FIFO \(named pipe\), not a regular file"):
        load_toml(fifo)
    with pytest.raises(ConfigError, match=r"/dev/zero is a character device, not a regular file"):
        load_toml("/dev/zero")
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(2 << 20)  # sparse: 2 MiB of nothing
    with pytest.raises(ConfigError, match=r"big.toml is 2 MiB, over the 1 MiB a config file may have"):
        load_toml(big)
