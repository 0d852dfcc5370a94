"""One registry makes every output: ``make_output`` by a spec's scheme or suffix, or by
kind; each ``edgepose-run`` output flag is a row of ``OUTPUT_FLAGS`` that asks the
registry for its kind; a plug-in added with ``register_output`` is made, checked and told
the frame rate like the built-ins. Real outputs, real files; no frame is processed here
(``tests/edgepose/cli/test_run.py`` runs a plug-in through ``edgepose-run``)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import edgepose.outputs as registry
from edgepose.app.config import RunConfig, build_config
from edgepose.cli.run import OUTPUT_FLAGS, make_outputs
from edgepose.core.errors import ConfigError
from edgepose.outputs import make_output, register_output
from edgepose.outputs.base import FrameResult, Output
from edgepose.outputs.jsonl import JsonLinesOutput
from edgepose.outputs.recording import RecordingOutput
from edgepose.outputs.serve import ServeOutput
from edgepose.outputs.snapshots import SnapshotOutput
from tests.conftest import REPO
from tests.edgepose.outputs.helpers import free_port


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test registers is gone after it."""
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_SPEC_KINDS", dict(registry._SPEC_KINDS))


class Plugin(Output):
    """A third-party output: remembers how it was made and what happened to it."""

    kind = "plugin"

    def __init__(self, spec: str, **options: Any) -> None:
        super().__init__(spec)
        self.options = options
        self.flag = options.get("flag", "--output")
        self.path = None if "://" in spec else Path(spec)  # a file: one destination, one output
        self.events: list[str] = []

    def check(self) -> None:
        self.events.append("check")

    def set_frame_rate(self, fps: float) -> None:
        self.events.append(f"fps {fps:g}")

    def open(self) -> None:
        self.events.append("open")

    def write(self, result: FrameResult) -> None:
        self.written += 1

    def close(self) -> None:
        self.events.append("close")


# ---- each flag builds the kind it always built -----------------------------------------

def test_the_flag_table_names_real_settings_and_registered_kinds() -> None:
    names = {f.name for f in dataclasses.fields(RunConfig)}
    for row in OUTPUT_FLAGS:
        assert {row.spec, *row.needs, *row.options.values()} <= names, row
        assert row.kind is None or row.kind in registry._BACKENDS, row
    assert [row.flag for row in OUTPUT_FLAGS] == ["--json", "--output", "--record",
                                                  "--snapshot-dir", "--serve"]


def test_each_flag_builds_the_same_output_as_before(tmp_path: Path) -> None:
    pytest.importorskip("av")
    pytest.importorskip("aiohttp")
    port = free_port()
    cfg = build_config({"json": str(tmp_path / "poses.txt"),  # JSON Lines whatever the name
                        "output": [str(tmp_path / "b.jsonl"), "-"],
                        "record": str(tmp_path / "r.mp4"), "fps": 12.5,
                        "snapshot_every": 7, "snapshot_dir": str(tmp_path / "snaps"),
                        "serve": f"127.0.0.1:{port}", "serve_token": "a-token-of-16-chars",
                        "keypoint_threshold": 0.45})
    outs = make_outputs(cfg)
    assert [type(o).__name__ for o in outs] == ["JsonLinesOutput", "JsonLinesOutput", "JsonLinesOutput",
                                                "RecordingOutput", "SnapshotOutput", "ServeOutput"]
    json_, b, stdout, rec, snaps, serve = outs
    assert isinstance(json_, JsonLinesOutput) and (json_.flag, json_.path) == ("--json", tmp_path / "poses.txt")
    assert isinstance(b, JsonLinesOutput) and b.flag == "--output" and stdout.spec == "-"
    assert isinstance(rec, RecordingOutput) and rec.flag == "--record"
    assert (rec.path, rec.fps, rec.keypoint_threshold) == (tmp_path / "r.mp4", 12.5, 0.45)
    assert isinstance(snaps, SnapshotOutput)
    assert (snaps.folder, snaps.every, snaps.keypoint_threshold) == (tmp_path / "snaps", 7, 0.45)
    assert isinstance(serve, ServeOutput) and serve.spec == f"serve http://127.0.0.1:{port}/"
    assert (serve.token, serve.keypoint_threshold) == ("a-token-of-16-chars", 0.45)


@pytest.mark.parametrize("flags, built", [
    ({}, []),
    ({"snapshot_dir": "<tmp>"}, []),  # snapshots need snapshot_every too
    ({"snapshot_every": 2, "snapshot_dir": "<tmp>"}, ["snapshots"]),
    ({"json": "-"}, ["jsonl"]),
    ({"record": "<tmp>/a.mp4"}, ["mp4"]),
    ({"output": ["<tmp>/a.mp4", "<tmp>/b.json"]}, ["mp4", "jsonl"]),
])
def test_an_output_flag_is_on_only_when_given(tmp_path: Path, flags: dict[str, Any], built: list[str]) -> None:
    if "record" in flags or "output" in flags:
        pytest.importorskip("av")
    fill = {k: [x.replace("<tmp>", str(tmp_path)) for x in v] if isinstance(v, list)
            else v.replace("<tmp>", str(tmp_path)) if isinstance(v, str) else v for k, v in flags.items()}
    assert [o.kind for o in make_outputs(build_config(fill))] == built


@pytest.mark.parametrize("kind, flags", [
    ("jsonl", {"json": "<tmp>/p.jsonl"}),
    ("mp4", {"record": "<tmp>/r.mp4"}),
    ("snapshots", {"snapshot_every": 3, "snapshot_dir": "<tmp>/s"}),
    ("serve", {"serve": "8080"}),
])
def test_every_flag_asks_the_registry(tmp_path: Path, kind: str, flags: dict[str, Any]) -> None:
    """Replacing a kind replaces what its flag builds: no flag bypasses the registry."""
    register_output(kind, Plugin)
    outs = make_outputs(build_config({k: v.replace("<tmp>", str(tmp_path)) if isinstance(v, str) else v
                                      for k, v in flags.items()}))
    assert len(outs) == 1 and isinstance(outs[0], Plugin)
    flag = next(row.flag for row in OUTPUT_FLAGS if row.kind == kind)
    assert outs[0].flag == flag and outs[0].events == ["check"]


# ---- plug-ins --------------------------------------------------------------------------

def test_a_registered_scheme_and_suffix_make_the_plugin(tmp_path: Path) -> None:
    register_output("zmq", Plugin)
    register_output(".csv", Plugin)
    out = make_output("  zmq://hub:5555/poses ", flag="--output", keypoint_threshold=0.2)
    assert isinstance(out, Plugin) and out.spec == "zmq://hub:5555/poses"  # stripped, as built-ins get it
    assert out.options == {"flag": "--output", "keypoint_threshold": 0.2}
    assert isinstance(make_output(str(tmp_path / "poses.CSV")), Plugin)


def test_the_plugin_is_made_checked_and_told_the_rate_by_the_run(tmp_path: Path) -> None:
    register_output("zmq", Plugin)
    cfg = build_config({"json": str(tmp_path / "p.jsonl"), "output": ["zmq://hub/poses"],
                        "keypoint_threshold": 0.6})
    json_, plugin = make_outputs(cfg)
    assert isinstance(plugin, Plugin) and plugin.events == ["check"]
    assert plugin.options == {"flag": "--output", "keypoint_threshold": 0.6}
    plugin.set_frame_rate(29.97)
    json_.set_frame_rate(29.97)  # the base class: nothing to take
    assert plugin.events == ["check", "fps 29.97"]


def test_a_plugin_file_counts_in_one_destination_one_output(tmp_path: Path) -> None:
    register_output(".csv", Plugin)
    both = str(tmp_path / "poses.csv")
    with pytest.raises(ConfigError, match=rf"--json {both} and --output {both} both write to the same file"):
        make_outputs(build_config({"json": both, "output": [both]}))


def test_a_replaced_mp4_suffix_is_for_output_specs_not_for_record(tmp_path: Path) -> None:
    pytest.importorskip("av")
    register_output(".mp4", Plugin)
    cfg = build_config({"output": [str(tmp_path / "a.mp4")], "record": str(tmp_path / "b.mp4")})
    assert [type(o) for o in make_outputs(cfg)] == [Plugin, RecordingOutput]


def test_set_frame_rate_reaches_recordings_by_any_flag(tmp_path: Path) -> None:
    for out in (RecordingOutput(str(tmp_path / "a.mp4")), make_output(str(tmp_path / "b.mp4"))):
        out.set_frame_rate(25.0)
        assert isinstance(out, RecordingOutput) and out.fps == 25.0


# ---- what specs select ------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["serve://8080", "snapshots://x", "jsonl://x", "mp4://x"])
def test_flag_kinds_are_not_output_schemes(spec: str) -> None:
    scheme = spec.partition(":")[0]
    with pytest.raises(ConfigError, match=rf"^output {spec}: scheme {scheme}:// is not an output edgepose knows; "):
        make_output(spec)


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="output kind 'nope' is not registered; known kinds: jsonl, mp4, "):
        make_output("x", kind="nope")


def test_backends_are_imported_only_when_used(tmp_path: Path) -> None:
    """--json makes its output without importing the recording, snapshot, network or
    browser-view backends, nor PyAV, aiohttp, paho or websockets."""
    code = ("import sys; from edgepose.app.config import build_config; "
            "from edgepose.cli.run import make_outputs; "
            f"make_outputs(build_config({{'json': {str(tmp_path / 'p.jsonl')!r}}})); "
            "heavy = ['edgepose.outputs.recording', 'edgepose.outputs.snapshots', "
            "'edgepose.outputs.serve', 'edgepose.outputs.mqtt', 'edgepose.outputs.websocket', "
            "'edgepose.outputs.osc', 'av', 'aiohttp', 'paho', 'websockets']; "
            "print([m for m in heavy if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "[]", proc.stderr


# ---- what a spec selects, and what an unknown one is told --------------------------------

@pytest.mark.parametrize("spec, kind", [
    ("-", "-"), (" - ", "-"),
    ("ws://host:8765/a.b", "ws"), ("MQTT://host/t", "mqtt"),
    ("a://b://c", "a"),                      # the first scheme, not the last
    ("my-out://host/p.x", ".x"),             # not a scheme: only letters and digits name one
    ("dir.d/poses.JSONL", ".jsonl"),         # the last dot, lower case
    ("x/a.b/c", ""), ("runs.2024/poses", ""),  # a dot in a folder is no suffix
    ("poses", ""), (".hidden", ".hidden"),
])
def test_output_kind_of_a_spec(spec: str, kind: str) -> None:
    assert registry.output_kind(spec) == kind


@pytest.mark.parametrize("spec, match", [
    ("   ", r"^output '   ' is empty: pass FILE\.jsonl"),
    ("poses.txt", r"^output poses\.txt: suffix \.txt is not an output edgepose knows; pass FILE\.jsonl"),
    ("poses", r"^output poses: no suffix is not an output edgepose knows"),
    ("zz://host/p.jsonl", r"^output zz://host/p\.jsonl: scheme zz:// is not an output edgepose knows"),
])
def test_an_unknown_spec_is_told_what_would_do(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        registry.make_output(spec)
