"""``edgepose models list | info NAME | fetch NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgepose.core.errors import ModelError
from edgepose.decoders import DECODER_KINDS
from edgepose.models.manifest import SCHEMA_NAMES, AnyManifest, TopDownManifest
from edgepose.models.registry import (
    cache_dir,
    describe_model,
    fetch_model,
    find_model_file,
    get_manifest,
    is_model_path,
    list_manifests,
    list_pipelines,
    resolve_model,
)
from edgepose.models.usermodels import DEFAULT_PROPOSER


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, inspect and download models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    ls = msub.add_parser("list", help="known models and whether they are on disk")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)
    info = msub.add_parser("info", help="everything the manifest says about a model")
    info.add_argument("name", help="a model name, or a .tflite path with its <stem>.toml sidecar")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=run_info)
    fetch = msub.add_parser("fetch", help="download a model into the cache, verified by sha256",
                            description="Download models into the cache, verified by sha256. A derived "
                            "model (e.g. posenet-...-edgetpu) is made from its upstream source file "
                            "instead; --url and --from then apply to that source.")
    fetch.add_argument("names", nargs="*", metavar="NAME")
    fetch.add_argument("--all", action="store_true", help="every known model")
    fetch.add_argument("--url", help="download from this URL (a mirror) instead of the manifest's")
    fetch.add_argument("--from", dest="source_dir", metavar="DIR",
                       help="copy from a local folder (searched by file name) instead of downloading")
    fetch.add_argument("--force", action="store_true", help="download even when a verified copy exists")
    fetch.add_argument("--timeout", type=_seconds, default=30.0, metavar="SECONDS",
                       help="each read waits at most this long, and the whole download must average "
                            "16 KiB/s after the first SECONDS (it never grows past the manifest's size)")
    fetch.set_defaults(func=run_fetch)
    add = msub.add_parser(
        "add", help="register your own .tflite so it runs by name",
        description="Register a model so `edgepose-run --model NAME` and `edgepose detect --model NAME` "
        "run it: the file (and its Edge TPU twin <stem>_edgetpu.tflite beside it) is copied into the "
        "model cache and its manifest written to $XDG_CONFIG_HOME/edgepose/models. A single-person "
        "model runs top-down: a proposer model finds the people, yours poses each one on a crop.")
    add.add_argument("file", metavar="FILE", help="the .tflite (its <stem>.toml manifest beside it, "
                     "or --decoder and --schema)")
    add.add_argument("--name", help="the name to run it by (default: the file's stem)")
    add.add_argument("--decoder", choices=DECODER_KINDS, help="decoder, for a file without manifest")
    add.add_argument("--schema", choices=SCHEMA_NAMES, help="keypoint schema, for a file without manifest")
    add.add_argument("--topdown", action=argparse.BooleanOptionalAction, default=None,
                     help="run it on a crop around each person found by --proposer (default: yes for "
                     "single-person decoders movenet/heatmap/posenet_single, no for posenet_multi)")
    add.add_argument("--proposer", metavar="NAME",
                     help=f"the multi-pose model that finds people (default {DEFAULT_PROPOSER})")
    add.add_argument("--force", action="store_true", help="replace a user model of the same name")
    add.set_defaults(func=run_add)
    rm = msub.add_parser("remove", help="unregister a model added with `models add`")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(func=run_remove)


def _seconds(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0.1 <= value <= 3600):
        raise argparse.ArgumentTypeError(f"{text} must be between 0.1 and 3600 seconds")
    return value


def _where(name: str) -> str:
    m = describe_model(name)
    if isinstance(m, TopDownManifest):  # a pipeline is on disk when its models are
        missing = [p for p in (m.proposer, m.landmark) if not _on_disk(p)]
        return f"parts not downloaded: {', '.join(missing)}" if missing else "parts downloaded"
    try:
        path = find_model_file(get_manifest(name))
    except ModelError as exc:
        return f"bad copy: {exc}"
    return str(path) if path else "not downloaded"


def _on_disk(name: str) -> bool:
    try:
        return find_model_file(get_manifest(name)) is not None
    except ModelError:
        return False


def _parts(m: TopDownManifest) -> list[str]:
    """A pipeline's models, its fallback landmark and their twins (so it runs offline on
    either device)."""
    names: list[str] = []
    for part in (m.proposer, m.landmark, m.fallback.get("landmark")):
        names += [n for n in _with_twins(part) if n not in names]
    return names


def _with_twins(name: str | None) -> list[str]:
    if not name:
        return []
    m = get_manifest(name)
    return [n for n in (name, m.edgetpu_twin, m.cpu_twin) if n]


def _replaceable(pipes: dict[str, TopDownManifest], names: list[str]) -> dict[str, str]:
    """Parts whose failed download is a note, not a failure: a requested pipeline's
    landmark (and twins) when it has a fallback -> why ("PIPE runs FALLBACK in its place")."""
    out = {}
    for name in names:
        m = pipes.get(name)
        if m is not None and m.fallback:
            for part in _with_twins(m.landmark):
                out[part] = f"{m.name} runs {m.fallback['landmark']} in its place until this succeeds"
    return out


def run_list(args: argparse.Namespace) -> int:
    ms = list_manifests()
    pipes = list_pipelines()
    if args.json:
        every: list[tuple[str, AnyManifest]] = [*ms.items(), *pipes.items()]
        json.dump([{**m.to_dict(), "path": _where(n)} for n, m in every], sys.stdout, indent=1)
        print()
        return 0
    rows = [("NAME", "DEVICE", "INPUT", "DECODER", "SCHEMA", "LOCAL COPY")]
    for n, m in sorted(ms.items()):
        rows.append((n, m.device, f"{m.input_size[0]}x{m.input_size[1]}", m.decoder, m.schema, _where(n)))
    for n, p in sorted(pipes.items()):
        rows.append((n, "both", "crops", f"topdown: {p.proposer} -> {p.landmark}", p.schema, _where(n)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    print(f"cache: {cache_dir()}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    m: AnyManifest
    if is_model_path(args.name):  # a model file with its sidecar
        spec = resolve_model(args.name, fetch=False)
        m, where = spec.manifest, str(spec.path)
    else:
        m, where = describe_model(args.name), _where(args.name)
    d = {**m.to_dict(), "manifest": str(m.source), "local_copy": where}
    if args.json:
        json.dump(d, sys.stdout, indent=1)
        print()
    else:
        for k, v in d.items():
            print(f"{k:15} {v}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    names = sorted(list_manifests()) if args.all else args.names
    if not names:
        raise ModelError("name the model(s) to fetch, or pass --all (see `edgepose models list`)")
    pipes = list_pipelines()
    replaceable = _replaceable(pipes, names)
    names = [n for name in names for n in (_parts(pipes[name]) if name in pipes else [name])]
    names = list(dict.fromkeys(names))  # a model named twice is fetched once
    for name in args.names:  # a part named on its own must be fetched
        replaceable.pop(name, None)
    if args.url and len(names) > 1:
        raise ModelError("--url names one file; fetch one model at a time with --url")
    for name in names:
        m = get_manifest(name)
        if args.all and m.build and find_model_file(m) is None:  # made on the dev PC, never downloaded
            print(f"{name}: not fetched, built on the dev PC (the `build` command in its manifest)")
            continue
        existing = None if args.force else find_model_file(m)
        if existing is not None:
            again = "derives it again" if m.derive else "downloads again"
            how = "sha256" if m.sha256 or not m.git_blob else "git blob"
            print(f"{name}: {existing} (already there, {how} verified; --force {again})")
            continue
        wanted = m.source_file if m.derive else m.file
        if args.all and args.source_dir and not _in_folder(Path(args.source_dir), wanted):
            # --all from a folder fetches what the folder holds; the rest is a note, not a failure
            print(f"{name}: skipped, no {wanted} under {args.source_dir} (`edgepose models fetch "
                  f"{name}` downloads it)")
            continue
        # no verified copy (or --force): download (or derive) without looking for one again
        try:
            path = fetch_model(name, url=args.url, source_dir=args.source_dir, force=True,
                               timeout=args.timeout)
        except ModelError as exc:
            if name not in replaceable:
                raise
            print(f"{name}: not fetched ({exc}); {replaceable[name]}")
            continue
        print(f"{name}: {path}" + (f" (derived from {m.source_file}, sha256 verified)" if m.derive else ""))
    return 0


def _in_folder(folder: Path, file_name: str) -> bool:
    return folder.is_dir() and ((folder / file_name).is_file()
                                or any(p.is_file() for p in folder.rglob(file_name)))


def run_add(args: argparse.Namespace) -> int:
    from edgepose.models.usermodels import add_model

    written = add_model(args.file, name=args.name, decoder=args.decoder, schema=args.schema,
                        topdown=args.topdown, proposer=args.proposer, force=args.force)
    for m in written:
        what = (f"top-down: {m.proposer} finds people, {m.landmark} poses each"
                if isinstance(m, TopDownManifest) else f"{m.device}, {m.decoder}/{m.schema}")
        print(f"{m.name}: {m.source or 'written'} ({what})")
    print(f"run it: edgepose-run --model {written[-1].name}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from edgepose.models.usermodels import remove_model

    for name in remove_model(args.name):
        print(f"removed {name}")
    return 0
