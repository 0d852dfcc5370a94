"""Model manifests: one TOML file per model describing how to fetch, feed and decode it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgepose.derive import DERIVE_KINDS
from edgepose.errors import ModelError
from edgepose.tomlio import read_toml

DEVICES = ("cpu", "edgetpu")
RESIZE_MODES = ("letterbox", "stretch", "crop")
INTERPOLATIONS = ("bilinear", "nearest")
DECODER_KINDS = ("movenet", "posenet_single", "posenet_multi", "heatmap")
SCHEMA_NAMES = ("coco17", "mpii16")
REQUIRED = ("name", "file", "input_size", "decoder", "schema")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Manifest:
    """What edgepose needs to know about one model file."""

    name: str
    file: str
    input_size: tuple[int, int]  # (height, width)
    decoder: str
    schema: str
    url: str = ""
    sha256: str = ""
    license: str = ""
    description: str = ""
    device: str = "cpu"
    cpu_twin: str = ""
    edgetpu_twin: str = ""
    resize: str = "letterbox"
    interpolation: str = "bilinear"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    decoder_params: dict[str, Any] = field(default_factory=dict)
    # A model made from another file instead of downloaded: `derive` names the rewrite
    # (edgepose.derive), applied to source_file (found locally or fetched from
    # source_url, verified by source_sha256); the result is verified by sha256.
    derive: str = ""
    source_file: str = ""
    source_url: str = ""
    source_sha256: str = ""
    source: Path | None = field(default=None, compare=False)  # the TOML it came from

    @property
    def multi_pose(self) -> bool:
        return self.decoder == "posenet_multi"

    def with_(self, **changes: Any) -> Manifest:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        d["input_size"] = list(self.input_size)
        for k in ("mean", "std"):
            if d[k] is None:
                d.pop(k)
            else:
                d[k] = list(d[k])
        return d


def manifest_from_dict(data: dict[str, Any], origin: str = "manifest") -> Manifest:
    """Validate a parsed manifest; errors name the file, the key and the fix."""
    known = {f.name for f in fields(Manifest)} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelError(f"{origin}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ModelError(f"{origin}: missing required field(s) {', '.join(missing)}")
    d = dict(data)
    size = d["input_size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and v > 0 for v in size)):
        raise ModelError(f"{origin}: input_size must be [height, width] positive integers, got {size!r}")
    d["input_size"] = (int(size[0]), int(size[1]))
    for key in ("sha256", "source_sha256"):
        sha = str(d.get(key, "")).lower()
        if sha and not _SHA256.match(sha):
            raise ModelError(f"{origin}: {key} {d[key]!r} is not 64 hex digits")
        d[key] = sha
    _check_derive(d, origin)
    for key, allowed in (("device", DEVICES), ("resize", RESIZE_MODES),
                         ("interpolation", INTERPOLATIONS), ("decoder", DECODER_KINDS),
                         ("schema", SCHEMA_NAMES)):
        if key in d and d[key] not in allowed:
            raise ModelError(f"{origin}: {key} = {d[key]!r}; expected one of {', '.join(allowed)}")
    for key in ("mean", "std"):
        if d.get(key) is not None:
            v = d[key]
            v = [v] if isinstance(v, (int, float)) else v
            if not isinstance(v, (list, tuple)) or len(v) not in (1, 3) or not all(isinstance(x, (int, float)) for x in v):
                raise ModelError(f"{origin}: {key} must be a number or 3 numbers, got {d[key]!r}")
            d[key] = tuple(float(x) for x in v)
    if d.get("std") is not None and not all(x > 0 for x in d["std"]):
        raise ModelError(f"{origin}: std = {data['std']!r}: every std must be positive (pixels are "
                         "divided by it); use the training normalisation, e.g. std = 127.5")
    if not isinstance(d.get("decoder_params", {}), dict):
        raise ModelError(f"{origin}: [decoder_params] must be a table")
    for key in ("name", "file"):
        if not isinstance(d[key], str) or not d[key]:
            raise ModelError(f"{origin}: {key} must be a non-empty string")
    return Manifest(**d)


def _check_derive(d: dict[str, Any], origin: str) -> None:
    """A derived model names its rewrite, its source file and both checksums, and no url."""
    if not d.get("derive"):
        extra = [k for k in ("source_file", "source_url", "source_sha256") if d.get(k)]
        if extra:
            raise ModelError(f"{origin}: {', '.join(extra)} without derive; add derive = "
                             f"({'|'.join(DERIVE_KINDS)}) or drop them")
        return
    if d["derive"] not in DERIVE_KINDS:
        raise ModelError(f"{origin}: derive = {d['derive']!r}; expected one of {', '.join(DERIVE_KINDS)}")
    missing = [k for k in ("source_file", "source_sha256", "sha256") if not d.get(k)]
    if missing:
        raise ModelError(f"{origin}: derive needs {', '.join(missing)} (the source file, its sha256 and "
                         "the derived file's sha256)")
    if d.get("url"):
        raise ModelError(f"{origin}: a derived model has no url of its own; put the source's in source_url")


def load_manifest(path: str | Path) -> Manifest:
    p = Path(path)
    data = read_toml(p, "manifest", ModelError)
    return replace(manifest_from_dict(data, origin=str(p)), source=p)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_manifest(m: Manifest) -> str:
    d = m.to_dict()
    params = d.pop("decoder_params")
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if v != "" or k in REQUIRED]
    if params:
        lines.append("\n[decoder_params]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def write_manifest(m: Manifest, path: str | Path) -> Path:
    """Write ``m`` as TOML (a sidecar is ``<model stem>.toml`` next to the model)."""
    p = Path(path)
    if not p.parent.is_dir():
        raise ModelError(f"cannot write manifest {p}: directory {p.parent} does not exist")
    p.write_text(dumps_manifest(m), encoding="utf-8")
    return p
