"""The model registry: find a model by name or path, from the model path, the cache or
its official URL (verified by sha256)."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgepose.core.errors import FetchError, ModelError
from edgepose.core.limits import MAX_MODEL_BYTES, check_file, read_bounded
from edgepose.models.builtin import MANIFESTS_DIR
from edgepose.models.download import CHUNK, download, git_blob_id
from edgepose.models.manifest import (
    DECODER_KINDS,
    SCHEMA_NAMES,
    AnyManifest,
    Manifest,
    TopDownManifest,
    dumps_manifest,
    load_any_manifest,
    load_manifest,
    manifest_from_dict,
    write_manifest,
)
from edgepose.models.tflite_info import read_model_bytes, read_model_info

__all__ = [
    "Manifest", "ModelSpec", "TopDownManifest", "cache_dir", "describe_model", "dumps_manifest",
    "fetch_model", "find_model_file", "get_pipeline", "is_model_path", "list_manifests",
    "list_pipelines", "load_manifest", "manifest_dirs", "resolve_model", "sha256_file",
    "unreachable_mark", "user_manifest_dir", "write_manifest",
]

log = logging.getLogger(__name__)
# models/ of a source checkout (editable install), else the copy shipped in the package.
BUILTIN_MANIFESTS = MANIFESTS_DIR


@dataclass(frozen=True)
class ModelSpec:
    """A manifest plus the model file it resolved to."""

    manifest: Manifest
    path: Path


def cache_dir() -> Path:
    """Per-user model cache: $EDGEPOSE_CACHE_DIR, else $XDG_CACHE_HOME/edgepose/models."""
    if os.environ.get("EDGEPOSE_CACHE_DIR"):
        return Path(os.environ["EDGEPOSE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepose" / "models"


def unreachable_mark(name: str) -> Path:
    """Where a failed download of ``name`` is remembered (``edgepose.models.recall``)."""
    return cache_dir() / ".unreachable" / name


def user_manifest_dir() -> Path:
    """The user's models (``edgepose models add``): $XDG_CONFIG_HOME/edgepose/models."""
    cfg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(cfg) / "edgepose" / "models"


def manifest_dirs() -> list[Path]:
    """Where manifests live: $EDGEPOSE_MANIFEST_PATH, the user's models, the built-in set."""
    dirs = [Path(p) for p in os.environ.get("EDGEPOSE_MANIFEST_PATH", "").split(os.pathsep) if p]
    return [*dirs, user_manifest_dir(), BUILTIN_MANIFESTS]


def _all_manifests() -> dict[str, AnyManifest]:
    """Every known manifest of either kind by name; earlier directories win."""
    found: dict[str, AnyManifest] = {}
    for d in manifest_dirs():
        if d.is_dir():
            for p in sorted(q for q in d.glob("*.toml") if q.is_file()):
                m = load_any_manifest(p)
                found.setdefault(m.name, m)
    return found


def list_manifests() -> dict[str, Manifest]:
    """Every known model (one .tflite file) by name; earlier directories win."""
    return {n: m for n, m in _all_manifests().items() if isinstance(m, Manifest)}


def list_pipelines() -> dict[str, TopDownManifest]:
    """Every known pipeline of models (``kind = "topdown"``) by name."""
    return {n: m for n, m in _all_manifests().items() if isinstance(m, TopDownManifest)}


def get_pipeline(name: str) -> TopDownManifest | None:
    """The pipeline manifest called ``name``, or None when it names no pipeline."""
    return list_pipelines().get(name)


def describe_model(name: str) -> AnyManifest:
    """The manifest of a registered name, model or pipeline (unknown names: ModelError)."""
    known = _all_manifests()
    if name not in known:
        raise ModelError(
            f"unknown model {name!r}; known models: {', '.join(sorted(known)) or 'none'} "
            "(see `edgepose models list`, or give a .tflite path)"
        )
    return known[name]


def get_manifest(name: str) -> Manifest:
    """The manifest of the model (one file) called ``name``."""
    m = describe_model(name)
    if not isinstance(m, Manifest):
        raise ModelError(f"{name!r} is a {m.kind} pipeline of {m.proposer} and {m.landmark}, not one "
                         "model file; use those names here")
    return m


_hash_memo: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        _hash_memo[key] = h.hexdigest()
    return _hash_memo[key]


def _search_model_path(file_name: str) -> Path | None:
    for root in os.environ.get("EDGEPOSE_MODEL_PATH", "").split(os.pathsep):
        if root and Path(root).is_dir():
            direct = Path(root) / file_name
            if direct.is_file():
                return direct
            for hit in sorted(Path(root).rglob(file_name)):
                if hit.is_file():
                    return hit
    return None


def find_model_file(m: Manifest) -> Path | None:
    """The local copy of a manifest's file ($EDGEPOSE_MODEL_PATH, then the cache), or None."""
    hit = _search_model_path(m.file)
    if hit is None:
        cached = cache_dir() / m.file
        hit = cached if cached.is_file() else None
    if hit is not None and not m.sha256 and m.git_blob and (blob := git_blob_id(hit)) != m.git_blob:
        raise ModelError(f"{hit}: git blob id {blob[:12]}… does not match manifest {m.name!r} "
                         f"({m.git_blob[:12]}…), damaged or another version; replace it with "
                         f"`edgepose models fetch --force {m.name}` or remove it")
    if hit is not None and m.sha256 and sha256_file(hit) != m.sha256:
        in_cache = hit.parent == cache_dir()
        fix = (f"replace it with `edgepose models fetch --force {m.name}`" if in_cache else
               "remove or replace it (found through $EDGEPOSE_MODEL_PATH)")
        raise ModelError(
            f"{hit}: sha256 {sha256_file(hit)[:12]}… does not match manifest {m.name!r} "
            f"({m.sha256[:12]}…), the file is damaged or another version; {fix}"
        )
    return hit


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_stale_parts(dest_dir: Path, max_age_s: float = 24 * 3600) -> list[Path]:
    """Remove ``.part`` files that a killed download left in the cache: those of a process
    that is gone (the PID is in the name) and unnamed ones older than ``max_age_s``."""
    import time

    removed: list[Path] = []
    if not dest_dir.is_dir():
        return removed
    for part in dest_dir.glob(".*.part"):
        pid = part.name[:-len(".part")].rsplit(".", 2)
        owner = int(pid[-2]) if len(pid) == 3 and pid[-2].isdigit() else None
        try:
            stale = (not _pid_alive(owner)) if owner is not None else \
                time.time() - part.stat().st_mtime > max_age_s
            if stale:
                part.unlink()
                removed.append(part)
        except OSError:
            continue
    if removed:
        log.info("removed %d unfinished download(s) from %s", len(removed), dest_dir)
    return removed


def _find_in_folder(folder: Path, file_name: str) -> Path | None:
    """``folder/file_name``, else the first match searched recursively by name."""
    if not folder.is_dir():
        return None
    return next((p for p in [folder / file_name, *sorted(folder.rglob(file_name))] if p.is_file()), None)


def _temp_in(dest_dir: Path, file_name: str) -> Path:
    """A new empty temporary file in the cache, for an atomic rename once verified."""
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_parts(dest_dir)
        # .<file>.<pid>.<random>.part: a later fetch can tell when its writer is gone
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file_name}.{os.getpid()}.", suffix=".part",
                                        dir=dest_dir)
    except OSError as exc:
        raise FetchError(f"cannot write into the model cache {dest_dir} ({exc.strerror}); set "
                         "EDGEPOSE_CACHE_DIR to a writable folder") from None
    os.close(fd)
    return Path(tmp_name)


def _install(data_or_tmp: bytes | Path, dest: Path) -> Path:
    """Move a verified temp file (or write verified bytes) to ``dest`` atomically."""
    tmp = data_or_tmp if isinstance(data_or_tmp, Path) else _temp_in(dest.parent, dest.name)
    try:
        if not isinstance(data_or_tmp, Path):
            tmp.write_bytes(data_or_tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        raise FetchError(f"cannot write {dest} ({exc.strerror}); free some space or set "
                         "EDGEPOSE_CACHE_DIR to a writable folder") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _source_bytes(m: Manifest, url: str | None, source_dir: str | Path | None, timeout: float,
                  progress: Callable[[int, int], None] | None) -> bytes:
    """The upstream file a derived model is made from: from ``source_dir``, the model
    path or the cache, else downloaded; always checked against ``source_sha256``."""
    if source_dir is not None:
        local = _find_in_folder(Path(source_dir), m.source_file)
        if local is None:
            raise FetchError(f"no {m.source_file} (the source of {m.name!r}) under {source_dir}; "
                             "check the folder or drop --from")
    else:
        local = _search_model_path(m.source_file)
        if local is None and (cache_dir() / m.source_file).is_file():
            local = cache_dir() / m.source_file
    if local is not None and url is None:
        data = read_bounded(local, "model file", FetchError, max_bytes=MAX_MODEL_BYTES)
        digest = hashlib.sha256(data).hexdigest()
        if digest != m.source_sha256:
            raise FetchError(f"{local}: sha256 {digest[:12]}… is not that of {m.source_file} "
                             f"({m.source_sha256[:12]}…), the source of {m.name!r}; replace it with "
                             f"the file from {m.source_url or 'upstream'}")
        return data
    src = url or m.source_url
    if not src:
        raise FetchError(f"model {m.name!r} is derived from {m.source_file}, which is not on this machine "
                         "and has no source_url; put it in $EDGEPOSE_MODEL_PATH")
    tmp = _temp_in(cache_dir(), m.source_file)
    try:
        download(m.name, src, m.source_sha256, tmp, timeout, progress, size=m.source_size)
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def _derive_model(m: Manifest, url: str | None, source_dir: str | Path | None, timeout: float,
                  progress: Callable[[int, int], None] | None) -> Path:
    from edgepose.models.derive import derive

    data = derive(m.derive, _source_bytes(m, url, source_dir, timeout, progress), origin=m.source_file)
    digest = hashlib.sha256(data).hexdigest()
    if digest != m.sha256:
        raise FetchError(f"deriving {m.name!r} ({m.derive}) from {m.source_file} gave sha256 {digest[:12]}…, "
                         f"expected {m.sha256[:12]}…; nothing was written (a different flatbuffers "
                         "version? please report it)")
    dest = _install(data, cache_dir() / m.file)
    log.info("derived %s from %s into %s", m.name, m.source_file, dest)
    return dest


def fetch_model(
    name: str,
    *,
    url: str | None = None,
    source_dir: str | Path | None = None,
    force: bool = False,
    timeout: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Download a model into the cache, atomically, refusing a sha256 mismatch.

    ``url`` replaces the manifest's (a mirror); ``source_dir`` takes the file from a local
    folder instead (searched recursively by file name: a USB stick, a shared drive), for
    machines without internet. A derived model (``derive`` in its manifest) is made from
    its source file the same way: ``url`` and ``source_dir`` then apply to the source.
    Returns the local path (without downloading when a verified copy exists and not
    ``force``). Nothing partial is ever left in the cache.
    """
    m = get_manifest(name)
    if not force:
        existing = find_model_file(m)
        if existing is not None:
            return existing
    if m.derive:
        derived = _derive_model(m, url, source_dir, timeout, progress)
        _forget_failure(name)
        return derived
    if m.build and source_dir is None and url is None:
        raise FetchError(f"model {name!r} is built on the dev PC, not downloaded: run the `build` command in "
                         f"{m.source or 'its manifest'} there (README: Import from TF.js) and copy {m.file} "
                         "(with its .toml) into a folder of $EDGEPOSE_MODEL_PATH")
    if source_dir is not None:
        hit = _find_in_folder(Path(source_dir), m.file)
        if hit is None:
            raise FetchError(f"no {m.file} under {source_dir} for model {name!r}; check the folder or drop --from")
        url = hit.resolve().as_uri()
    src = url or m.url
    if not src:
        raise FetchError(f"model {name!r} has no url in its manifest; put {m.file} in $EDGEPOSE_MODEL_PATH")
    if not m.sha256 and not m.git_blob:
        raise FetchError(f"model {name!r} has no sha256 (or git_blob) in its manifest; refusing an "
                         "unverified download")
    tmp = _temp_in(cache_dir(), m.file)
    try:
        download(name, src, m.sha256, tmp, timeout, progress, size=m.size, git_blob=m.git_blob)
        dest = _install(tmp, cache_dir() / m.file)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("fetched %s into %s", name, dest)
    _forget_failure(name)
    return dest


def _forget_failure(name: str) -> None:
    try:
        unreachable_mark(name).unlink(missing_ok=True)
    except OSError:  # a read-only cache: nothing was remembered there either
        pass


def is_model_path(model: str | Path) -> bool:
    """The one answer to "is this a model file rather than a registry name": a Path, a
    name ending in .tflite, anything with a path separator, or an existing path."""
    if isinstance(model, Path):
        return True
    return model.endswith(".tflite") or os.sep in model or "/" in model or Path(model).exists()


def _manifest_for_path(path: Path, decoder: str | None, schema: str | None) -> Manifest:
    sidecar = path.with_suffix(".toml")
    if sidecar.is_file():
        m = load_manifest(sidecar)
        if m.sha256 and sha256_file(path) != m.sha256:
            raise ModelError(
                f"{path}: sha256 {sha256_file(path)[:12]}… does not match its manifest {sidecar} "
                f"({m.sha256[:12]}…); the model changed since the manifest was written: "
                "re-export both, or fix sha256 in the manifest")
        return m.with_(file=path.name)
    if not decoder or not schema:
        read_model_bytes(path)  # an empty or non-TFLite file says so before asking for flags
        raise ModelError(
            f"{path} has no manifest ({sidecar.name} next to it); pass --decoder "
            f"({'|'.join(DECODER_KINDS)}) and --schema ({'|'.join(SCHEMA_NAMES)})"
        )
    info = read_model_info(path)
    return manifest_from_dict({
        "name": path.stem, "file": path.name, "input_size": list(info.input_size),
        "decoder": decoder, "schema": schema,
        "device": "edgetpu" if info.edgetpu else "cpu",
    }, origin=str(path))


def resolve_model(
    model: str | Path,
    *,
    decoder: str | None = None,
    schema: str | None = None,
    fetch: bool = True,
) -> ModelSpec:
    """Turn a model name or .tflite path into a manifest and a local file.

    A name is looked up among the manifests and found on disk or fetched; a path uses
    its sidecar ``<stem>.toml`` or the ``decoder``/``schema`` given.
    """
    text = str(model)
    if is_model_path(model):
        path = Path(text).expanduser()
        if not path.exists():
            raise ModelError(f"model file {path} not found")
        if path.is_dir():
            raise ModelError(f"model {path} is a directory; give a .tflite file")
        check_file(path, "model file", ModelError, max_bytes=MAX_MODEL_BYTES, fix="give a .tflite file")
        m = _manifest_for_path(path, decoder, schema)
    else:
        m = get_manifest(text)
        found = find_model_file(m)
        if found is None:
            if not fetch:
                what = "derived yet" if m.derive else "downloaded"
                raise ModelError(f"model {text!r} is not {what}; run `edgepose models fetch {text}`")
            found = fetch_model(text)
        path = found
    overrides = {k: v for k, v in (("decoder", decoder), ("schema", schema)) if v}
    if overrides:
        m = manifest_from_dict({**m.to_dict(), **overrides}, origin=str(m.source or path))
    return ModelSpec(manifest=m, path=path.resolve())
