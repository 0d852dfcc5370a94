"""Register a user's own model so it runs by name, like the built-in ones
(``edgepose models add FILE`` / ``edgepose models remove NAME``).

``add`` copies the .tflite (and its Edge TPU twin, found beside it as ``compile`` writes
it) into the model cache as ``<name>.tflite`` / ``<name>-edgetpu.tflite`` and writes
their manifests (sha256 included) into ``user_manifest_dir()``. A single-person model
(a decoder that finds one pose) runs top-down by default: ``<name>`` is then a
``kind = "topdown"`` pipeline of a proposer (a registered multi-pose model, PoseNet by
default) and the model, registered as ``<name>-landmark``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from edgepose.core.errors import ModelError
from edgepose.decoders import decoder_info
from edgepose.models.manifest import (
    AnyManifest,
    Manifest,
    TopDownManifest,
    dumps_manifest,
    load_any_manifest,
)
from edgepose.models.registry import (
    BUILTIN_MANIFESTS,
    ModelSpec,
    cache_dir,
    describe_model,
    list_manifests,
    resolve_model,
    sha256_file,
    user_manifest_dir,
)
from edgepose.models.tflite_info import read_model_info
from edgepose.models.twins import resolve_twin, twin_name

__all__ = ["DEFAULT_PROPOSER", "add_model", "remove_model", "user_models"]

DEFAULT_PROPOSER = "posenet-mobilenet-v1-075-481x641"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class _Part:
    """One manifest ``add`` writes, with the model file it copies into the cache."""

    manifest: AnyManifest
    source: Path | None = None


def user_models() -> dict[str, AnyManifest]:
    """The manifests in the user's folder, by name."""
    d = user_manifest_dir()
    found: dict[str, AnyManifest] = {}
    for p in sorted(d.glob("*.toml")) if d.is_dir() else []:
        m = load_any_manifest(p)
        found.setdefault(m.name, m)
    return found


def _builtin_names() -> set[str]:
    return {load_any_manifest(p).name for p in BUILTIN_MANIFESTS.glob("*.toml")}


def _pair(spec: ModelSpec) -> tuple[ModelSpec | None, ModelSpec | None]:
    """(CPU build, Edge TPU build) of the model given, the other one found beside it."""
    is_tpu = read_model_info(spec.path).edgetpu or spec.manifest.device == "edgetpu"
    want = "cpu" if is_tpu else "edgetpu"
    name = twin_name(spec, want)
    other = None
    if name:
        try:
            other = resolve_twin(spec, name)
        except ModelError:
            other = None  # a model without its twin still registers
    return (other, spec) if is_tpu else (spec, other)


def _check_proposer(proposer: str) -> str:
    multi = sorted(n for n, m in list_manifests().items() if m.multi_pose)
    try:
        m = describe_model(proposer)
    except ModelError:
        raise ModelError(f"--proposer {proposer!r} is not a known model; multi-pose models that can "
                         f"find people: {', '.join(multi) or 'none'}") from None
    if not isinstance(m, Manifest) or not m.multi_pose:
        raise ModelError(f"--proposer {proposer!r} does not find several people; use a multi-pose "
                         f"model: {', '.join(multi) or 'none'}")
    return proposer


def _check_names(names: list[str], force: bool) -> None:
    builtin, mine = _builtin_names(), user_models()
    for n in names:
        if n in builtin:
            raise ModelError(f"{n!r} is a built-in model's name; choose another with --name")
        if n in mine and not force:
            raise ModelError(f"{n!r} is already registered ({mine[n].source}); remove it with "
                             f"`edgepose models remove {n}` or pass --force to replace it")
        if n not in mine:
            try:
                other = describe_model(n)
            except ModelError:
                continue
            raise ModelError(f"{n!r} is already the name of {other.source}; choose another with --name")


def _plan(file: Path, name: str | None, decoder: str | None, schema: str | None,
          topdown: bool | None, proposer: str | None, force: bool) -> list[_Part]:
    """Every manifest to write (checked, nothing written yet)."""
    if not file.exists():
        raise ModelError(f"model file {file} not found; give the path of a .tflite model")
    spec = resolve_model(file, decoder=decoder, schema=schema)  # the sidecar, or the flags
    cpu, tpu = _pair(spec)
    main = cpu or spec
    stem = main.path.stem
    name = name or (stem[: -len("_edgetpu")] if cpu is None and stem.endswith("_edgetpu") else stem)
    if not _NAME.match(name):
        raise ModelError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (starting with a "
                         "letter or digit)")
    multi = decoder_info(main.manifest.decoder).multi_pose
    if topdown and multi:
        raise ModelError(f"--topdown: {file.name} has decoder {main.manifest.decoder!r}, which finds "
                         "several people itself; top-down needs a single-person model (drop --topdown)")
    use_topdown = (not multi) if topdown is None else topdown
    if proposer and not use_topdown:
        raise ModelError("--proposer is for top-down models; drop it or drop --no-topdown")
    model_name = f"{name}-landmark" if use_topdown else name
    tpu_name = f"{model_name}-edgetpu"
    common = {"url": "", "sha256": "", "derive": "", "source_file": "", "source_url": "",
              "source_sha256": ""}
    parts: list[_Part] = []  # the one to run (``name``) last
    if tpu is not None:
        parts.append(_Part(tpu.manifest.with_(
            **common, name=tpu_name if cpu is not None else model_name,
            file=f"{tpu_name if cpu is not None else model_name}.tflite", device="edgetpu",
            edgetpu_twin="", cpu_twin=model_name if cpu is not None else "",
            description=tpu.manifest.description or f"user model from {tpu.path} (Edge TPU)"), tpu.path))
    if cpu is not None:
        parts.append(_Part(cpu.manifest.with_(
            **common, name=model_name, file=f"{model_name}.tflite", device="cpu", cpu_twin="",
            edgetpu_twin=tpu_name if tpu is not None else "",
            description=cpu.manifest.description or f"user model from {cpu.path}"), cpu.path))
    if use_topdown:
        parts.append(_Part(TopDownManifest(
            name=name, proposer=_check_proposer(proposer or DEFAULT_PROPOSER), landmark=model_name,
            schema=main.manifest.schema,
            description=f"user model {main.path.name}, top-down: one person per crop")))
    _check_names([p.manifest.name for p in parts], force)
    return parts


def _atomic_write(dest: Path, write: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        if isinstance(write, Path):
            shutil.copyfile(write, tmp)
        else:
            Path(tmp).write_text(str(write), encoding="utf-8")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def add_model(file: str | Path, *, name: str | None = None, decoder: str | None = None,
              schema: str | None = None, topdown: bool | None = None, proposer: str | None = None,
              force: bool = False) -> list[AnyManifest]:
    """Register ``file`` (see the module docstring); returns the manifests written, the
    one to run (``name``) last. Everything is checked before anything is written, and a
    failed write removes what it wrote. ``force`` replaces a user model of the same name."""
    parts = _plan(Path(file).expanduser(), name, decoder, schema, topdown, proposer, force)
    if force:
        for part in parts:
            if part.manifest.name in user_models():
                remove_model(part.manifest.name)
    written: list[Path] = []
    try:
        mdir, cdir = user_manifest_dir(), cache_dir()
        mdir.mkdir(parents=True, exist_ok=True)
        cdir.mkdir(parents=True, exist_ok=True)
        out: list[AnyManifest] = []
        for part in parts:
            m = part.manifest
            if isinstance(m, Manifest) and part.source is not None:
                dest = cdir / m.file
                _atomic_write(dest, part.source)
                written.append(dest)
                m = m.with_(sha256=sha256_file(dest))
            toml = mdir / f"{m.name}.toml"
            _atomic_write(toml, dumps_manifest(m))
            written.append(toml)
            out.append(replace(m, source=toml))
        return out
    except OSError as exc:
        for p in written:
            p.unlink(missing_ok=True)
        raise ModelError(f"cannot register {file}: {exc.strerror} ({exc.filename}); set "
                         "XDG_CONFIG_HOME / EDGEPOSE_CACHE_DIR to writable folders") from None


def remove_model(name: str) -> list[str]:
    """Unregister a user model and the parts ``add`` wrote for it (its landmark model, its
    twins, their copies in the cache); returns the names removed."""
    mine = user_models()
    if name not in mine:
        if name in _builtin_names():
            raise ModelError(f"{name!r} is a built-in model; only models added with "
                             "`edgepose models add` can be removed")
        raise ModelError(f"{name!r} is not a user model; `edgepose models list` shows them "
                         f"(manifests in {user_manifest_dir()})")
    todo, removed = [name], []
    while todo:
        n = todo.pop()
        m = mine.get(n)
        if m is None or n in removed:
            continue
        if isinstance(m, TopDownManifest):
            todo.append(m.landmark)  # the proposer is somebody else's model
        else:
            todo += [t for t in (m.edgetpu_twin, m.cpu_twin) if t.startswith(name)]
            cached = cache_dir() / m.file
            if m.file == f"{m.name}.tflite":
                cached.unlink(missing_ok=True)
        if m.source is not None:
            m.source.unlink(missing_ok=True)
        removed.append(n)
    return removed
