"""Model manifests: one TOML file per model describing how to fetch, feed and decode it.

Two kinds of manifest (the TOML key ``kind``): ``model`` (the default; one .tflite file,
``Manifest``) and ``topdown`` (a pipeline of two registered models, ``TopDownManifest``:
a proposer that finds people in the frame and a landmark model run on a crop around
each; see ``edgepose.estimators.topdown``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgepose.core.errors import ModelError
from edgepose.core.schemas import SCHEMAS
from edgepose.core.tomlio import read_toml, toml_value
from edgepose.decoders import DECODER_KINDS, decoder_info
from edgepose.models.derive import DERIVE_KINDS

DEVICES = ("cpu", "edgetpu")
RESIZE_MODES = ("letterbox", "stretch", "crop")
INTERPOLATIONS = ("bilinear", "nearest")
CHANNEL_ORDERS = ("rgb", "bgr")
SCHEMA_NAMES = tuple(SCHEMAS)  # the keypoint schemas a manifest may name
REQUIRED = ("name", "file", "input_size", "decoder", "schema")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_BLOB = re.compile(r"^[0-9a-f]{40}$")


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
    # where upstream publishes no sha256: the file's git blob id at a commit-pinned url
    # (SHA-1 of b"blob <size>\0" + content, `git hash-object`); checked when sha256 is ""
    git_blob: str = ""
    size: int = 0  # bytes of ``file`` (0: unknown); a download never writes more
    license: str = ""
    description: str = ""
    device: str = "cpu"
    cpu_twin: str = ""
    edgetpu_twin: str = ""
    resize: str = "letterbox"
    interpolation: str = "bilinear"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: str = "rgb"  # channel order of the model's input (mean/std are in this order)
    decoder_params: dict[str, Any] = field(default_factory=dict)
    # A model made from another file instead of downloaded: `derive` names the rewrite
    # (edgepose.models.derive), applied to source_file (found locally or fetched from
    # source_url, verified by source_sha256); the result is verified by sha256.
    derive: str = ""
    source_file: str = ""
    source_url: str = ""
    source_sha256: str = ""
    source_size: int = 0  # bytes of ``source_file`` (0: unknown)
    # A model built on the dev PC from a float source (source_url/source_sha256, e.g. an npm
    # tarball) by the one command in `build`; it has no url, and its file is found through
    # $EDGEPOSE_MODEL_PATH or the cache once copied there.
    build: str = ""
    source: Path | None = field(default=None, compare=False)  # the TOML it came from

    kind = "model"

    @property
    def multi_pose(self) -> bool:
        return decoder_info(self.decoder).multi_pose

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
    blob = str(d.get("git_blob", "")).lower()
    if blob and not _GIT_BLOB.match(blob):
        raise ModelError(f"{origin}: git_blob {d['git_blob']!r} is not a git blob id (40 hex digits, "
                         "as `git hash-object FILE` prints)")
    d["git_blob"] = blob
    for key in ("size", "source_size"):
        v = d.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ModelError(f"{origin}: {key} = {v!r} must be the file's size in bytes (a whole "
                             "number, 0 for unknown)")
    _check_derive(d, origin)
    for key, allowed in (("device", DEVICES), ("resize", RESIZE_MODES),
                         ("interpolation", INTERPOLATIONS), ("decoder", DECODER_KINDS),
                         ("channels", CHANNEL_ORDERS),
                         ("schema", SCHEMA_NAMES)):
        if key in d and d[key] not in allowed:
            raise ModelError(f"{origin}: {key} = {d[key]!r}; expected one of {', '.join(allowed)}")
    produces = decoder_info(d["decoder"]).schemas
    if d["schema"] not in produces:
        raise ModelError(f"{origin}: decoder {d['decoder']!r} produces {' or '.join(produces)} "
                         f"keypoints, not schema {d['schema']!r}; fix `schema` in the manifest")
    for key in ("mean", "std"):
        if d.get(key) is not None:
            v = d[key]
            v = [v] if isinstance(v, (int, float)) else v
            numbers = isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v)
            if not numbers or len(v) not in (1, 3):
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
    if d.get("build"):
        if d.get("derive") or d.get("url"):
            raise ModelError(f"{origin}: a built model (build = ...) has neither url nor derive; put its "
                             "float source in source_url/source_sha256")
        return
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


@dataclass(frozen=True)
class TopDownManifest:
    """A top-down pipeline of two registered models: ``proposer`` finds the people in
    the frame (a multi-pose model), ``landmark`` estimates each one's pose on a square
    crop around it (a single-pose model). ``params`` tune the pipeline; they are checked
    when it opens (``edgepose.estimators.topdown.TopDownParams``). ``fallback`` (optional:
    ``landmark`` and ``params``) is the landmark model run instead, with those params over
    ``params``, when ``landmark`` cannot be downloaded (an offline machine whose cache
    lacks it): the pipeline then still runs, less precisely, and says so."""

    name: str
    proposer: str
    landmark: str
    schema: str = "coco17"
    description: str = ""
    license: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    fallback: dict[str, Any] = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False)

    kind = "topdown"
    multi_pose = True

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, **asdict(self)}
        d.pop("source")
        if not d["fallback"]:
            d.pop("fallback")
        return d


AnyManifest = Manifest | TopDownManifest
MANIFEST_KINDS = ("model", "topdown")


def topdown_from_dict(data: dict[str, Any], origin: str = "manifest") -> TopDownManifest:
    """Validate a parsed ``kind = "topdown"`` manifest; errors name the file and the key."""
    d = {k: v for k, v in data.items() if k != "kind"}
    known = {f.name for f in fields(TopDownManifest)} - {"source"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ModelError(f"{origin}: unknown key(s) {', '.join(unknown)} for a topdown manifest; "
                         f"known keys: kind, {', '.join(sorted(known))}")
    missing = [k for k in ("name", "proposer", "landmark") if k not in d]
    if missing:
        raise ModelError(f"{origin}: missing required field(s) {', '.join(missing)}")
    for key in ("name", "proposer", "landmark"):
        if not isinstance(d[key], str) or not d[key]:
            raise ModelError(f"{origin}: {key} must be a non-empty string (a model name)")
    if d.get("schema", "coco17") not in SCHEMA_NAMES:
        raise ModelError(f"{origin}: schema = {d['schema']!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    if not isinstance(d.get("params", {}), dict):
        raise ModelError(f"{origin}: [params] must be a table")
    _check_fallback(d.get("fallback", {}), origin)
    return TopDownManifest(**d)


def _check_fallback(fallback: Any, origin: str) -> None:
    """``[fallback]``: a table with a ``landmark`` name and an optional ``params`` table."""
    if not isinstance(fallback, dict):
        raise ModelError(f"{origin}: [fallback] must be a table (landmark = NAME, [fallback.params])")
    if not fallback:
        return
    unknown = sorted(set(fallback) - {"landmark", "params"})
    if unknown:
        raise ModelError(f"{origin}: unknown key(s) {', '.join(unknown)} in [fallback]; known keys: "
                         "landmark, params")
    if not isinstance(fallback.get("landmark"), str) or not fallback["landmark"]:
        raise ModelError(f"{origin}: [fallback] landmark must be a non-empty string (a model name)")
    if not isinstance(fallback.get("params", {}), dict):
        raise ModelError(f"{origin}: [fallback.params] must be a table")


def any_manifest_from_dict(data: dict[str, Any], origin: str = "manifest") -> AnyManifest:
    """A model or a topdown manifest, by its ``kind`` (default ``model``)."""
    kind = data.get("kind", "model")
    if kind == "topdown":
        return topdown_from_dict(data, origin)
    if kind != "model":
        raise ModelError(f"{origin}: kind = {kind!r}; expected one of {', '.join(MANIFEST_KINDS)}")
    return manifest_from_dict({k: v for k, v in data.items() if k != "kind"}, origin)


def load_any_manifest(path: str | Path) -> AnyManifest:
    """A manifest file of either kind (the registry's scan)."""
    p = Path(path)
    data = read_toml(p, "manifest", ModelError)
    return replace(any_manifest_from_dict(data, origin=str(p)), source=p)


def load_manifest(path: str | Path) -> Manifest:
    """A model manifest file (a sidecar, a built-in model); a pipeline's is refused."""
    m = load_any_manifest(path)
    if not isinstance(m, Manifest):
        raise ModelError(f"{path}: is a {m.kind} pipeline manifest, not a model's; a model file's "
                         "sidecar describes one .tflite (kind = \"model\")")
    return m


def dumps_manifest(m: AnyManifest) -> str:
    """``m`` as TOML text (a model's or a pipeline's)."""
    d = m.to_dict()
    table = "decoder_params" if isinstance(m, Manifest) else "params"
    params = d.pop(table)
    lines = [f"{k} = {toml_value(v)}" for k, v in d.items()
             if (v != "" and not (k in ("size", "source_size") and v == 0)) or k in REQUIRED]
    if params:
        lines.append(f"\n[{table}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def write_manifest(m: Manifest, path: str | Path) -> Path:
    """Write ``m`` as TOML (a sidecar is ``<model stem>.toml`` next to the model)."""
    p = Path(path)
    if not p.parent.is_dir():
        raise ModelError(f"cannot write manifest {p}: directory {p.parent} does not exist")
    p.write_text(dumps_manifest(m), encoding="utf-8")
    return p
