"""``edgepose-run`` settings: defaults, then a TOML file, then command-line flags (flags win).

Every bad value becomes one ``ConfigError`` line naming the key, its value and the fix.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from edgepose.errors import ConfigError, EdgePoseError
from edgepose.render.driver import DISPLAYS
from edgepose.tomlio import read_toml

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LIVE_PREFIXES = ("auto", "picamera", "picam", "libcamera", "/dev/video")


@dataclass(frozen=True)
class RunConfig:
    """Everything ``edgepose-run`` needs; field names are the TOML keys."""

    model: str = "movenet-lightning"
    device: str = "auto"
    num_threads: int | None = None
    source: str = "auto"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    loop: bool = False
    realtime: bool = False
    display: str = "auto"
    mirror: bool = False
    keypoint_threshold: float = 0.3
    pose_threshold: float = 0.15
    json: str | None = None
    record: str | None = None
    snapshot_every: int = 0
    snapshot_dir: str | None = None
    max_frames: int = 0
    smooth: bool = False
    track: bool = False
    log_level: str = "INFO"


KEYS: dict[str, Any] = {f.name: f.type for f in fields(RunConfig)}
_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "device": (str,), "num_threads": (int,), "source": (str, int),
    "width": (int,), "height": (int,), "fps": (int, float), "loop": (bool,),
    "realtime": (bool,), "display": (str,), "mirror": (bool,),
    "keypoint_threshold": (int, float), "pose_threshold": (int, float), "json": (str,),
    "record": (str,), "snapshot_every": (int,), "snapshot_dir": (str,), "max_frames": (int,),
    "smooth": (bool,), "track": (bool,), "log_level": (str,),
}


def load_toml(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML file (flat keys, ``-`` or ``_``); ConfigError when unreadable."""
    p = Path(path).expanduser()
    data = read_toml(p, "config file", ConfigError,
                     ": pass an existing TOML file with --config")
    out: dict[str, Any] = {}
    for raw, value in data.items():
        key = raw.replace("-", "_")
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"config file {p}: unknown key {raw!r}; {hint}known keys: "
                              f"{', '.join(KEYS)}")
        if not isinstance(value, _TYPES[key]) or (isinstance(value, bool) and bool not in _TYPES[key]):
            want = " or ".join(t.__name__ for t in _TYPES[key])
            article = "an" if want[0] in "aeiou" else "a"
            raise ConfigError(f"config file {p}: {key} = {value!r} should be {article} {want}")
        out[key] = str(value) if key == "source" else value
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
            merged[key] = value
    return validate(replace(RunConfig(), **merged), check_model=check_model)


def _is_file_source(source: str) -> bool:
    s = source.strip()
    return not (s.isdigit() or s.startswith(_LIVE_PREFIXES) or "://" in s)


def validate(cfg: RunConfig, *, check_model: bool = True) -> RunConfig:
    """``cfg`` if every value is usable, else ConfigError naming the first bad one."""
    if cfg.display not in DISPLAYS:
        raise ConfigError(f"display {cfg.display!r} is unknown; use one of {', '.join(DISPLAYS)}")
    if cfg.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"log_level {cfg.log_level!r} is unknown; use one of {', '.join(LOG_LEVELS)}")
    for key in ("keypoint_threshold", "pose_threshold"):
        v = getattr(cfg, key)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{key} {v} is out of range; use a score between 0 and 1")
    for key in ("width", "height", "fps"):
        v = getattr(cfg, key)
        if not (v > 0 and math.isfinite(v)):  # NaN and inf too
            raise ConfigError(f"{key} {v} must be a positive number")
    for key in ("snapshot_every", "max_frames"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} {getattr(cfg, key)} must be 0 (off) or a positive count")
    if cfg.num_threads is not None and cfg.num_threads < 1:
        raise ConfigError(f"num_threads {cfg.num_threads} must be at least 1")
    if cfg.snapshot_every and not cfg.snapshot_dir:
        raise ConfigError(f"snapshot_every {cfg.snapshot_every} needs a folder: pass --snapshot-dir DIR")
    if _is_file_source(cfg.source) and not Path(cfg.source).expanduser().exists():
        raise ConfigError(f"source file {cfg.source} not found: pass an existing video, image or "
                          "folder, a camera (auto, picamera, 0, /dev/video0) or a URL")
    from edgepose.engine import parse_device

    parse_device(cfg.device)  # raises ConfigError naming the accepted devices
    if check_model:
        _check_model(cfg.model)
    return replace(cfg, log_level=cfg.log_level.upper())


def _check_model(model: str) -> None:
    """Unknown model names and missing model files are config errors (no download here)."""
    from edgepose.registry import get_manifest

    if model.endswith(".tflite") or "/" in model:
        path = Path(model).expanduser()
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "not found"
            raise ConfigError(f"model file {model} {what}: pass an existing .tflite or a "
                              "model name from `edgepose models list`")
        return
    try:
        get_manifest(model)
    except EdgePoseError as err:
        raise ConfigError(f"model: {err}") from None
