"""Edge TPU runtime pairs (deploy/runtimes.toml): which TFLite interpreter and which
libedgetpu build go together on which Raspberry Pi OS, and how the installed pair
compares with that.

libedgetpu links the delegate interface of the TensorFlow it was built against; an
interpreter from another TensorFlow can crash inside ``tflite_plugin_create_delegate``.
One data file names the pairs; ``deploy/install-pi.sh`` installs the pair of its machine
and ``edgepose doctor`` checks it. The installer runs this file with the system python3
before edgepose is installed (``python3 edgepose/host/runtimes.py shell ...``), so it uses the
standard library only.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

try:
    from edgepose.core.errors import ConfigError
    from edgepose.models import builtin
except ImportError:  # run as a script by the installer: the edgepose package is not importable
    class ConfigError(Exception):  # type: ignore[no-redef]
        """Stand-in for edgepose.core.errors.ConfigError when this file runs as a script."""

    def _load_builtin() -> ModuleType:
        path = Path(__file__).resolve().parents[1] / "models" / "builtin.py"
        spec = importlib.util.spec_from_file_location("edgepose_builtin", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    builtin = _load_builtin()

# deploy/ and models/ of a source checkout, else the copies shipped in the package.
PAIRS_FILE: Path = builtin.PAIRS_FILE
MANIFESTS_DIR: Path = builtin.MANIFESTS_DIR
DEFAULT_MODEL: str = builtin.DEFAULT_MODEL
SPEEDS = ("std", "max")
THIRTY_TWO_BIT = ("armhf", "armel", "i386")
# Interpreter modules by distribution, in edgepose.inference.engine's order of preference.
INTERPRETER_DISTS = {"tflite_runtime": "tflite-runtime", "ai_edge_litert": "ai-edge-litert"}


@dataclass(frozen=True)
class Asset:
    """A file the installer downloads: a URL, or a PyPI requirement fetched with pip."""

    url: str
    sha256: str  # "" when not known: recorded on first install instead
    requirement: str = ""

    @property
    def key(self) -> str:
        """The name the installer records the asset's hash under."""
        return self.url.rsplit("/", 1)[-1] if self.url else self.requirement


@dataclass(frozen=True)
class Interpreter:
    dist: str
    module: str
    version: str
    tensorflow: str
    asset: Asset


@dataclass(frozen=True)
class Libedgetpu:
    version: str
    tensorflow: str
    std: Asset
    max: Asset

    def asset(self, speed: str) -> Asset:
        return self.std if speed == "std" else self.max

    @staticmethod
    def package(speed: str) -> str:
        return f"libedgetpu1-{speed}"


@dataclass(frozen=True)
class RuntimePair:
    codename: str
    arch: str
    python: str
    evidence: str
    pip_constraints: tuple[str, ...]
    interpreter: Interpreter
    libedgetpu: Libedgetpu
    pygame_source: str  # "pip" (a wheel with KMS/DRM) or "apt" (the OS package)
    pygame_requirement: str

    @property
    def name(self) -> str:
        return f"{self.codename}/{self.arch}"

    def describe(self, speed: str = "std") -> str:
        i, lib = self.interpreter, self.libedgetpu
        return (f"{i.dist} {i.version} with {lib.package(speed)} {lib.version} "
                f"(built against TensorFlow {lib.tensorflow})")


def _get(table: dict[str, Any], key: str, where: str, path: Path, kind: type = str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind):
        raise ConfigError(f"{path}: {where}.{key} must be a {kind.__name__}, got {value!r}; fix the runtime pairs file")
    return value


def _asset(table: Any, where: str, path: Path) -> Asset:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where} must be a table with url/requirement and sha256")
    url, req = str(table.get("url", "")), str(table.get("requirement", ""))
    sha = str(table.get("sha256", "")).lower()
    if bool(url) == bool(req):
        raise ConfigError(f"{path}: {where} needs exactly one of url or requirement")
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ConfigError(f"{path}: {where}.sha256 {sha!r} is not a sha256 (64 hex digits) or \"\"")
    return Asset(url, sha, req)


def load_pairs(path: Path = PAIRS_FILE) -> dict[tuple[str, str], RuntimePair]:
    """Every pair in the file, by (codename, architecture)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as err:
        raise ConfigError(f"runtime pairs file {path} cannot be read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"runtime pairs file {path} is not valid TOML ({err})") from None
    pairs = {}
    for codename, arches in data.items():
        for arch, t in arches.items():
            where = f"{codename}.{arch}"
            it, lib, pg = (_get(t, k, where, path, dict) for k in ("interpreter", "libedgetpu", "pygame"))
            source = _get(pg, "source", f"{where}.pygame", path)
            if source not in ("pip", "apt"):
                raise ConfigError(f"{path}: {where}.pygame.source must be pip or apt, got {source!r}")
            pairs[(codename, arch)] = RuntimePair(
                codename, arch, _get(t, "python", where, path), _get(t, "evidence", where, path),
                tuple(str(c) for c in t.get("pip_constraints", [])),
                Interpreter(**{k: _get(it, k, f"{where}.interpreter", path)
                               for k in ("dist", "module", "version", "tensorflow")},
                            asset=_asset(it, f"{where}.interpreter", path)),
                Libedgetpu(_get(lib, "version", f"{where}.libedgetpu", path),
                           _get(lib, "tensorflow", f"{where}.libedgetpu", path),
                           *(_asset(lib.get(s), f"{where}.libedgetpu.{s}", path) for s in SPEEDS)),
                source, _get(pg, "requirement", f"{where}.pygame", path))
    return pairs


def pair_for(codename: str, arch: str, path: Path = PAIRS_FILE) -> RuntimePair:
    """The pair for this OS release and dpkg architecture; ConfigError (one line) if none."""
    if arch in THIRTY_TWO_BIT:
        raise ConfigError(f"32-bit userland ({arch}): the Edge TPU runtimes are 64-bit only; "
                          "flash the 64-bit image (Raspberry Pi OS (64-bit)) and run this again")
    pairs = load_pairs(path)
    if (codename, arch) not in pairs:
        known = ", ".join(f"{c}/{a}" for c, a in sorted(pairs))
        raise ConfigError(f"no Edge TPU runtime pair for {codename or 'an unknown OS'}/{arch} in {path} "
                          f"(known: {known}); use Raspberry Pi OS (64-bit) Bookworm or Trixie")
    return pairs[(codename, arch)]


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """KEY=value pairs of an os-release file ({} when it is missing)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() and not key.startswith("#"):
            parts = shlex.split(value, comments=False)
            out[key.strip()] = parts[0] if parts else ""
    return out


def _run(cmd: Sequence[str]) -> str | None:
    """stdout of a read-only query, or None when the tool is missing or fails."""
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def dpkg_architecture() -> str | None:
    """``dpkg --print-architecture``: the userland's architecture (uname -m reports the
    kernel's: aarch64 on a 32-bit Pi OS with the 64-bit kernel)."""
    out = _run(["dpkg", "--print-architecture"])
    return out.strip() or None if out is not None else None


def installed_libedgetpu() -> tuple[str, str] | None:
    """(package, version) of the installed libedgetpu1-std/-max, from dpkg-query."""
    out = _run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n", "libedgetpu1-*"])
    for line in (out or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("ii"):
            return parts[0], parts[1]
    return None


def installed_interpreter() -> tuple[str, str] | None:
    """(module, version) of the interpreter edgepose.inference.engine would use (tflite_runtime first)."""
    for module, dist in INTERPRETER_DISTS.items():
        if importlib.util.find_spec(module) is not None:
            try:
                return module, importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                return module, "unknown"
    return None


@dataclass(frozen=True)
class PairCheck:
    status: str  # "matching" | "differs" | "unknown"
    detail: str
    pair: RuntimePair | None = None


def compare(pair: RuntimePair | None, libedgetpu: tuple[str, str] | None,
            interpreter: tuple[str, str] | None, why_unknown: str = "") -> PairCheck:
    """The installed libedgetpu and interpreter against the pair of this machine."""
    lib = f"{libedgetpu[0]} {libedgetpu[1]}" if libedgetpu else "libedgetpu (not installed by dpkg)"
    interp = f"{interpreter[0]} {interpreter[1]}" if interpreter else "no interpreter"
    installed = f"{lib} with {interp}"
    if pair is None:
        return PairCheck("unknown", f"{installed}; no pair to compare with ({why_unknown})")
    want_lib = pair.libedgetpu.version
    want_interp = (pair.interpreter.module, pair.interpreter.version)
    diffs = []
    if libedgetpu is None or libedgetpu[1] != want_lib:
        diffs.append(f"libedgetpu {libedgetpu[1] if libedgetpu else 'missing'} (pair: {want_lib})")
    if interpreter != want_interp:
        diffs.append(f"{interp} (pair: {want_interp[0]} {want_interp[1]})")
    if diffs:
        return PairCheck("differs", f"{installed} differs from the {pair.name} pair: " + "; ".join(diffs), pair)
    return PairCheck("matching", f"{installed}: the {pair.name} pair ({pair.evidence})", pair)


def models_to_fetch(config: Path | None, manifests: Path = MANIFESTS_DIR) -> list[str]:
    """What ``edgepose models fetch`` gets for the run's model (``model`` in ``config``,
    else the default): a top-down pipeline by its own name (the fetch takes its models, its
    fallback landmark and their twins, and a landmark that cannot be downloaded is a note
    while its fallback is there), else the model and its Edge TPU / CPU twins, as named
    in the manifests; [] when the model is a file path."""
    model = DEFAULT_MODEL
    if config is not None and config.is_file():
        with open(config, "rb") as fh:
            model = str(tomllib.load(fh).get("model", DEFAULT_MODEL))
    if model.endswith(".tflite") or "/" in model:
        return []
    by_name = {}
    for p in sorted(manifests.glob("*.toml")):
        with open(p, "rb") as fh:
            m = tomllib.load(fh)
        by_name[str(m.get("name", p.stem))] = m
    manifest = by_name.get(model, {})
    if manifest.get("kind") == "topdown":
        return [model]
    names: list[str] = []
    for name in (model, *(str(manifest.get(t, "")) for t in ("edgetpu_twin", "cpu_twin"))):
        if name and name not in names:
            names.append(name)
    return names


def shell_variables(pair: RuntimePair, speed: str) -> dict[str, str]:
    """What deploy/install-pi.sh needs of a pair, as shell variable names and values."""
    i, lib = pair.interpreter, pair.libedgetpu
    a = lib.asset(speed)
    return {
        "PAIR_NAME": pair.name, "PAIR_EVIDENCE": pair.evidence, "PAIR_PYTHON": pair.python,
        "PAIR_DESCRIPTION": pair.describe(speed),
        "SYSTEM_PYTHON": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "INTERP_DIST": i.dist, "INTERP_MODULE": i.module, "INTERP_VERSION": i.version,
        "INTERP_URL": i.asset.url, "INTERP_REQUIREMENT": i.asset.requirement,
        "INTERP_SHA256": i.asset.sha256, "INTERP_KEY": i.asset.key,
        "LIB_PACKAGE": lib.package(speed), "LIB_VERSION": lib.version, "LIB_URL": a.url,
        "LIB_SHA256": a.sha256, "LIB_KEY": a.key,
        "PYGAME_SOURCE": pair.pygame_source, "PYGAME_REQUIREMENT": pair.pygame_requirement,
        "PIP_CONSTRAINTS": "\n".join(pair.pip_constraints),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="runtimes.py", description=__doc__.splitlines()[0])
    p.add_argument("--prog", default="runtimes.py", help="name to put before an error line")
    p.add_argument("--pairs", type=Path, default=PAIRS_FILE, help="the runtime pairs file")
    sub = p.add_subparsers(dest="command", required=True)
    sh = sub.add_parser("shell", help="the pair of a machine as shell variable assignments")
    sh.add_argument("--os-release", type=Path, default=Path("/etc/os-release"))
    sh.add_argument("--arch", required=True, help="dpkg --print-architecture")
    sh.add_argument("--speed", choices=SPEEDS, default="std")
    mo = sub.add_parser("models", help="the run's model and its twins, one per line")
    mo.add_argument("--config", type=Path)
    mo.add_argument("--manifests", type=Path, default=MANIFESTS_DIR)
    args = p.parse_args(argv)
    try:
        if args.command == "models":
            print("\n".join(models_to_fetch(args.config, args.manifests)))
            return 0
        codename = read_os_release(args.os_release).get("VERSION_CODENAME", "")
        pair = pair_for(codename, args.arch, args.pairs)
    except (ConfigError, OSError, tomllib.TOMLDecodeError) as err:
        print(f"{args.prog}: {err}", file=sys.stderr)
        return 2
    for key, value in shell_variables(pair, args.speed).items():
        print(f"{key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
