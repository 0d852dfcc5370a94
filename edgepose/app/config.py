"""``edgepose-run`` settings, declared once: the fields of ``RunConfig`` (name, type,
default, help, choices, check) generate the command-line flags (``edgepose.cli.run``),
the TOML checks (``load_toml``) and the sample config (``sample_config``).

Precedence: defaults, then a TOML file, then flags (flags win). Every bad value is one
``ConfigError`` line naming the key, its value and the fix.
"""

from __future__ import annotations

import difflib
import math
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgepose.core.errors import ConfigError, EdgePoseError
from edgepose.core.limits import MAX_MODEL_BYTES, MAX_PIXELS, MAX_SIDE, check_file
from edgepose.core.pose import KEYPOINT_THRESHOLD, POSE_THRESHOLD
from edgepose.core.tomlio import read_toml, toml_value
from edgepose.models.builtin import DEFAULT_MODEL
from edgepose.models.manifest import DECODER_KINDS, SCHEMA_NAMES
from edgepose.outputs import OUTPUT_HELP
from edgepose.render.driver import DISPLAYS
from edgepose.sources.spec import SOURCE_HELP

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
Validator = Callable[[Any, "RunConfig"], None]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def setting(default: Any, help: str, *, choices: tuple[str | None, ...] = (), check: Validator | None = None,
            metavar: str | None = None, example: str | None = None, section: str = "") -> Any:
    """One setting: a ``RunConfig`` field with what the flag, the TOML check and the sample
    config need. ``example`` is shown commented out in the sample config; ``section``
    starts a new paragraph there."""
    meta = {"help": help, "choices": choices, "check": check, "metavar": metavar,
            "example": example, "section": section}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


# ---- checks: (value, whole config) -> None or ConfigError ------------------------------

def _unit_score(key: str) -> Validator:
    def check(v: Any, cfg: RunConfig) -> None:
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{key} {v} is out of range; use a score between 0 and 1")
    return check


def _number(v: Any) -> bool:
    """A real, finite number (not NaN, not inf; a bool is not one)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or math.isfinite(v)


def _within(key: str, lo: float, hi: float, unit: str, *, off: float | None = None,
            why: str = "") -> Validator:
    """``lo`` <= value <= ``hi`` (``off``, when given, also accepted: 'derived'/'off').
    The bounds are what the code downstream can use, so every value passes or is one line."""
    def check(v: Any, cfg: RunConfig) -> None:
        if off is not None and _number(v) and v == off:
            return
        if not (_number(v) and lo <= v <= hi):
            zero = f"0 ({why}) or " if off is not None else ""
            raise ConfigError(f"{key} {v} is out of range; use {zero}{lo:g}..{hi:g} {unit}")
    return check


def _camera_size(key: str) -> Validator:
    side = _within(key, 16, MAX_SIDE, "pixels")

    def check(v: Any, cfg: RunConfig) -> None:
        side(v, cfg)
        if key == "height" and _number(cfg.width) and 16 <= cfg.width <= MAX_SIDE:
            if cfg.width * v > MAX_PIXELS:
                raise ConfigError(f"width x height {cfg.width}x{v} is {cfg.width * v / 1e6:.0f} MP, "
                                  f"over edgepose's limit of {MAX_PIXELS / 1e6:.0f} MP; pick a "
                                  "smaller camera size")
    return check


def _count(key: str) -> Validator:
    def check(v: Any, cfg: RunConfig) -> None:
        if v < 0:
            raise ConfigError(f"{key} {v} must be 0 (off) or a positive count")
    return check


# Below 1 s a normal invoke (a few hundred ms for a big model on a Pi's CPU) counts as a
# hang; above an hour a hang is never noticed (and the OS refuses waits beyond ~292 years).
_timeout = _within("invoke_timeout", 1.0, 3600.0, "seconds", off=0.0,
                   why="ten median invokes, kept within 2..4 s")


def _threads(v: int | None, cfg: RunConfig) -> None:
    cores = usable_cores()
    if v is not None and not 1 <= v <= cores:
        raise ConfigError(f"num_threads {v} is out of range: this machine has {cores} usable "
                          f"core(s); pass 1..{cores} or leave it out (all of them)")


def _device(v: str, cfg: RunConfig) -> None:
    from edgepose.inference.engine import parse_device

    parse_device(v)  # raises ConfigError naming the accepted devices


def _source(v: str, cfg: RunConfig) -> None:
    from edgepose.sources.spec import parse_source

    try:
        parse_source(v).check_exists()
    except EdgePoseError as err:
        raise ConfigError(str(err)) from None


def _not_empty(key: str, fix: str) -> Validator:
    def check(v: Any, cfg: RunConfig) -> None:
        if v is not None and not str(v).strip():
            raise ConfigError(f"{key} = {v!r} is empty; {fix}")
    return check


def _snapshots(v: int, cfg: RunConfig) -> None:
    _count("snapshot_every")(v, cfg)
    if v and not cfg.snapshot_dir:
        raise ConfigError(f"snapshot_every {v} needs a folder: pass --snapshot-dir DIR")


def _outputs(v: tuple[str, ...], cfg: RunConfig) -> None:
    for spec in v:
        _not_empty("output", "give a file or URL, or remove it")(spec, cfg)


def _serve(v: str | None, cfg: RunConfig) -> None:
    if v is not None:
        from edgepose.outputs.serve import check_bind

        check_bind(v, cfg.serve_token)  # beyond loopback without a token: ConfigError


def _model(v: str, cfg: RunConfig) -> None:
    """Unknown model names and missing model files are config errors (no download here)."""
    from edgepose.models.registry import describe_model, is_model_path

    if is_model_path(v):
        path = Path(v).expanduser()
        if path.is_dir():
            raise ConfigError(f"model file {v} is a directory: pass an existing .tflite or a "
                              "model name from `edgepose models list`")
        check_file(path, "model file", ConfigError, max_bytes=MAX_MODEL_BYTES,
                   fix="pass an existing .tflite or a model name from `edgepose models list`")
        return
    try:
        describe_model(v)
    except EdgePoseError as err:
        raise ConfigError(f"model: {err}") from None


@dataclass(frozen=True)
class RunConfig:
    """Everything ``edgepose-run`` needs; field names are the TOML keys and, with ``-``,
    the flags."""

    model: str = setting(DEFAULT_MODEL, "model name from `edgepose models list` "
                         "(movenet-multipose: several people; movenet-lightning: one), or a "
                         ".tflite path (with a <stem>.toml beside it)", check=_model, section="Model")
    device: str = setting("auto", "auto (Edge TPU if present, else CPU), cpu, edgetpu, usb, usb:N, "
                          "pci, pci:N", check=_device)
    decoder: str | None = setting(None, "decoder for a .tflite without a <stem>.toml manifest",
                                  choices=(*DECODER_KINDS, None), metavar="KIND", example='"heatmap"')
    schema: str | None = setting(None, "keypoint schema for a .tflite without a manifest",
                                 choices=(*SCHEMA_NAMES, None), metavar="NAME", example='"coco17"')
    num_threads: int | None = setting(None, "CPU interpreter threads (default: every usable core)",
                                      check=_threads, metavar="N", example="4")
    worker: bool = setting(True, "run the interpreter in a supervised worker process: a crash or "
                           "hang of the runtime (a bad libedgetpu pairing, an unplugged "
                           "accelerator) is logged, the worker restarted and the frame retried")
    invoke_timeout: float = setting(0.0, "seconds an invoke may take before the worker counts as "
                                    "hung (0: ten median invokes, kept within 2..4 s)",
                                    check=_timeout, metavar="S")
    load_timeout: float = setting(5.0, "seconds each stage of loading a model in the worker (the "
                                  "Edge TPU delegate, then the interpreter) may take before it "
                                  "counts as hung", check=_within("load_timeout", 1.0, 3600.0, "seconds"),
                                  metavar="S")
    source: str = setting("auto", SOURCE_HELP, check=_source, section="Source")
    width: int = setting(640, f"camera capture width (16..{MAX_SIDE}; width x height at most "
                         f"{MAX_PIXELS // 1_000_000} MP)", check=_camera_size("width"))
    height: int = setting(480, "camera capture height", check=_camera_size("height"))
    fps: float = setting(30.0, "camera frame rate (0.01..1000; also paces --realtime images and "
                         "is the rate of a recording of them)", check=_within("fps", 0.01, 1000.0, "frames a second"))
    loop: bool = setting(False, "video files: start again at the end")
    realtime: bool = setting(False, "video files: play at their own frame rate instead of as "
                             "fast as possible")
    allow_truncated: bool = setting(False, "a truncated or damaged video ends the run with "
                                    "exit 0 instead of 1")
    display: str = setting("auto", "auto (desktop window when DISPLAY/WAYLAND_DISPLAY is set, "
                           "else full-screen on the TV through KMS/DRM, else headless), tv, "
                           "window or none", choices=DISPLAYS, section="Display")
    mirror: bool = setting(False, "flip frames left-right before inference (selfie view)")
    keypoint_threshold: float = setting(KEYPOINT_THRESHOLD, "draw keypoints scoring at least this (0..1)",
                                        check=_unit_score("keypoint_threshold"), metavar="S")
    pose_threshold: float = setting(POSE_THRESHOLD, "keep poses scoring at least this (0..1)",
                                    check=_unit_score("pose_threshold"), metavar="S")
    smooth: bool = setting(False, "smooth keypoints over time (One Euro filter)")
    track: bool = setting(False, "give each person a stable track id")
    json: str | None = setting(None, "write one JSON line per frame to this file (- for stdout)",
                               check=_not_empty("json", "give a file name or - , or remove the key"),
                               metavar="FILE", example='"/home/pi/edgepose/poses.jsonl"',
                               section="Outputs")
    output: tuple[str, ...] = setting((), OUTPUT_HELP + "; repeat for several", check=_outputs, metavar="SPEC",
                                      example='["mqtt://127.0.0.1/edgepose/poses"]')
    record: str | None = setting(None, "record the annotated frames (source resolution, skeleton "
                                 "drawn) to this MP4",
                                 check=_not_empty("record", "give an .mp4 file name, or remove the key"),
                                 metavar="FILE.mp4", example='"/home/pi/edgepose/session.mp4"')
    snapshot_every: int = setting(0, "save every Nth annotated frame as a JPEG into snapshot_dir "
                                  "(0: off)", check=_snapshots, metavar="N")
    snapshot_dir: str | None = setting(None, "folder for snapshot_every", metavar="DIR",
                                       example='"/home/pi/edgepose/snapshots"')
    serve: str | None = setting(None, "serve the live view and /poses on [HOST:]PORT (loopback "
                                "unless a host is given; beyond loopback needs serve_token)",
                                check=_serve, metavar="[HOST:]PORT", example='"8080"')
    serve_token: str | None = setting(None, "token every request to --serve must carry, as "
                                      "?token= or Authorization: Bearer (required beyond "
                                      "loopback; at least 16 characters without spaces; auto: "
                                      "make one and print the URL with it)",
                                      metavar="TOKEN",
                                      example='"change-me-to-16-or-more-characters"')
    max_frames: int = setting(0, "stop after this many frames (0: run until stopped)",
                              check=_count("max_frames"), metavar="N", section="Run")
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR (to stderr: the journal "
                             "under systemd)", choices=LOG_LEVELS)


SETTINGS: tuple[Field[Any], ...] = tuple(fields(RunConfig))
KEYS: dict[str, Any] = {f.name: f.type for f in SETTINGS}
_HINTS = typing.get_type_hints(RunConfig)


def value_types(key: str) -> tuple[type, ...]:
    """The Python types a setting accepts from TOML (``None`` never: omit the key)."""
    hint = _HINTS[key]
    if typing.get_origin(hint) is tuple:
        return (list,)
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    base = typing.get_origin(args[0]) or args[0]
    if base is float:
        return (int, float)
    if base is tuple:
        return (list,)
    return (base,)


def _type_name(types: tuple[type, ...]) -> str:
    names = {"list": "a list of strings", "int": "an int", "float": "float", "bool": "a bool",
             "str": "a str"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in types)


def _coerce(key: str, value: Any, origin: str) -> Any:
    types = value_types(key)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if ok and list in types:
        ok = all(isinstance(v, str) for v in value)
    if key == "source" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # source = 0 means the first webcam
    if not ok:
        raise ConfigError(f"{origin}: {key} = {value!r} should be {_type_name(types)}")
    return tuple(value) if list in types else value


def _unknown(key: str, origin: str) -> ConfigError:
    close = difflib.get_close_matches(key, KEYS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{origin}: unknown key {key!r}; {hint}known keys: {', '.join(KEYS)}")


def load_toml(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML file (flat keys, ``-`` or ``_``); ConfigError when unreadable."""
    p = Path(path).expanduser()
    data = read_toml(p, "config file", ConfigError, ": pass an existing TOML file with --config")
    out: dict[str, Any] = {}
    for raw, value in data.items():
        key = raw.replace("-", "_")
        if key not in KEYS:
            raise _unknown(raw, f"config file {p}")
        out[key] = _coerce(key, value, f"config file {p}")
    return out


def build_config(flags: Mapping[str, Any], config_file: str | Path | None = None,
                 *, check_model: bool = True) -> RunConfig:
    """Defaults, overridden by ``config_file``, overridden by ``flags`` (keys given on the
    command line only; None values are ignored); validated."""
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(load_toml(config_file))
    for key, value in flags.items():
        key = key.replace("-", "_")
        if key not in KEYS:
            raise ConfigError(f"unknown setting {key!r}; known settings: {', '.join(KEYS)}")
        if value is not None:
            merged[key] = tuple(value) if isinstance(value, list) else value
    return validate(replace(RunConfig(), **merged), check_model=check_model)


def validate(cfg: RunConfig, *, check_model: bool = True) -> RunConfig:
    """``cfg`` if every value is usable, else ConfigError naming the first bad one."""
    cfg = replace(cfg, log_level=str(cfg.log_level).upper())
    for f in SETTINGS:
        value = getattr(cfg, f.name)
        choices = f.metadata["choices"]
        if choices and value not in choices:
            known = ", ".join(c for c in choices if c is not None)
            raise ConfigError(f"{f.name} {value!r} is unknown; use one of {known}")
        check = f.metadata["check"]
        if check is not None and (check_model or f.name != "model"):
            check(value, cfg)
    return cfg


def sample_config() -> str:
    """The sample ``edgepose.toml`` (deploy/edgepose.toml), made from the settings table:
    every key with its help; defaults active, examples commented out."""
    import textwrap

    lines = ["# edgepose-run settings (flat keys). Command-line flags override anything here.",
             "# Installed as /etc/edgepose/edgepose.toml by deploy/install-pi.sh; check it with",
             "#   edgepose doctor --config /etc/edgepose/edgepose.toml",
             "# Every key is optional: active lines show the defaults, commented ones examples.",
             "# Generated from edgepose/app/config.py: `python -m edgepose.app.config > deploy/edgepose.toml`."]
    for f in SETTINGS:
        meta = f.metadata
        if meta["section"]:
            lines += ["", f"# ---- {meta['section']}"]
        lines += textwrap.wrap(meta["help"], 88, initial_indent="# ", subsequent_indent="# ")
        if f.default is None or meta["example"] is not None and f.default in ((), None):
            lines.append(f"# {f.name} = {meta['example']}")
        else:
            lines.append(f"{f.name} = {toml_value(f.default)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(sample_config())
