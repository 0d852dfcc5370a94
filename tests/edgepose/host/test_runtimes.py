"""edgepose.host.runtimes: the runtime pairs file read as the installer and the doctor read it,
the installed pair found through fake dpkg tools on PATH, and the file standing alone
(the installer runs it with a bare python3)."""

from __future__ import annotations

import inspect
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.core.errors import ConfigError
from edgepose.host import runtimes
from edgepose.host.runtimes import (
    DEFAULT_MODEL,
    compare,
    installed_libedgetpu,
    load_pairs,
    models_to_fetch,
    pair_for,
    read_os_release,
)

MODULE = Path(runtimes.__file__)


def test_every_pair_is_consistent() -> None:
    """Asset names agree with the versions, codenames, architectures and Python they claim."""
    pairs = load_pairs()
    assert {("bookworm", "arm64"), ("trixie", "arm64")} <= set(pairs)
    for (codename, arch), p in pairs.items():
        lib = p.libedgetpu
        for speed in ("std", "max"):
            a = lib.asset(speed)
            assert a.url.startswith("https://") and a.key == f"libedgetpu1-{speed}_{lib.version}.{codename}_{arch}.deb"
            assert lib.tensorflow in lib.version  # "16.0tf2.17.1-1" is built against TF 2.17.1
        i = p.interpreter
        cp = "cp" + p.python.replace(".", "")
        if i.asset.url:
            assert i.asset.key.startswith(f"{i.module}-{i.version}-{cp}-{cp}-") and i.asset.key.endswith("aarch64.whl")
        else:
            assert i.asset.requirement == f"{i.dist}=={i.version}"
            assert f"{i.dist}=={i.version}" in p.pip_constraints  # pip never moves the pinned interpreter
        for a in (i.asset, lib.std, lib.max):
            assert a.sha256 == "" or len(a.sha256) == 64
        assert p.pygame_source in ("pip", "apt") and p.evidence


@pytest.mark.parametrize("codename, arch, message", [
    ("bookworm", "armhf", "flash the 64-bit image"),
    ("trixie", "armel", r"32-bit userland \(armel\)"),
    ("bullseye", "arm64", "no Edge TPU runtime pair for bullseye/arm64"),
    ("", "arm64", "no Edge TPU runtime pair for an unknown OS/arm64"),
])
def test_pair_for_refuses(codename: str, arch: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        pair_for(codename, arch)
    assert "\n" not in str(err.value)


GOOD = """
[trixie.arm64]
python = "3.13"
evidence = "test"
[trixie.arm64.interpreter]
dist = "ai-edge-litert"
module = "ai_edge_litert"
version = "2.2.0"
tensorflow = "x"
requirement = "ai-edge-litert==2.2.0"
sha256 = ""
[trixie.arm64.libedgetpu]
version = "16.0tf2.19.1-1"
tensorflow = "2.19.1"
std = { url = "https://example.invalid/a.deb", sha256 = "" }
max = { url = "https://example.invalid/b.deb", sha256 = "" }
[trixie.arm64.pygame]
source = "apt"
requirement = "python3-pygame"
"""


@pytest.mark.parametrize("edit, message", [
    (('version = "2.2.0"', "version = 2"), "trixie.arm64.interpreter.version must be a str"),
    (('requirement = "ai-edge-litert==2.2.0"', 'url = "u"\nrequirement = "r"'), "exactly one of url or requirement"),
    (('std = { url = "https://example.invalid/a.deb", sha256 = "" }',
      'std = { url = "https://example.invalid/a.deb", sha256 = "abc" }'), "is not a sha256"),
    (('source = "apt"', 'source = "conda"'), "pygame.source must be pip or apt"),
    (("[trixie.arm64.libedgetpu]", "[trixie.arm64.libedgetpux]"), "libedgetpu must be a dict"),
    (('python = "3.13"', 'python = "3.13'), "is not valid TOML"),
])
def test_bad_pairs_file(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert pair_for("trixie", "arm64", good).interpreter.version == "2.2.0"
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_pairs(bad)


def test_read_os_release(tmp_path: Path) -> None:
    f = tmp_path / "os-release"
    f.write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n# comment\nVERSION_CODENAME=trixie\nID=\'debian\'\n')
    assert read_os_release(f) == {"PRETTY_NAME": "Debian GNU/Linux 13 (trixie)",
                                  "VERSION_CODENAME": "trixie", "ID": "debian"}
    assert read_os_release(tmp_path / "missing") == {}


@pytest.mark.parametrize("lib, interp, status, words", [
    (("libedgetpu1-max", "16.0tf2.17.1-1"), ("tflite_runtime", "2.17.1"), "matching",
     ["libedgetpu1-max 16.0tf2.17.1-1 with tflite_runtime 2.17.1", "bookworm/arm64 pair", "Frigate"]),
    (("libedgetpu1-std", "16.0"), ("tflite_runtime", "2.17.1"), "differs", ["libedgetpu 16.0 (pair: 16.0tf2.17.1-1)"]),
    (("libedgetpu1-std", "16.0tf2.17.1-1"), ("ai_edge_litert", "2.3.0"), "differs",
     ["ai_edge_litert 2.3.0 (pair: tflite_runtime 2.17.1)"]),
    (None, None, "differs", ["libedgetpu missing", "no interpreter"]),
])
def test_compare(lib: tuple[str, str] | None, interp: tuple[str, str] | None, status: str,
                 words: list[str]) -> None:
    result = compare(pair_for("bookworm", "arm64"), lib, interp)
    assert result.status == status
    for w in words:
        assert w in result.detail


def test_compare_without_a_pair() -> None:
    result = compare(None, None, ("ai_edge_litert", "2.3.0"), "not Raspberry Pi OS")
    assert result.status == "unknown" and "not Raspberry Pi OS" in result.detail


def test_installed_libedgetpu_reads_dpkg_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake dpkg-query: one removed (rc) package and one installed one."""
    tool = tmp_path / "dpkg-query"
    tool.write_text('#!/bin/sh\nprintf "libedgetpu1-max 16.0 rc \\nlibedgetpu1-std 16.0tf2.19.1-1 ii \\n"\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert installed_libedgetpu() == ("libedgetpu1-std", "16.0tf2.19.1-1")
    tool.write_text("#!/bin/sh\necho 'dpkg-query: no packages found matching libedgetpu1-*' >&2\nexit 1\n")
    assert installed_libedgetpu() is None


def test_default_model_is_the_runs_default() -> None:
    from edgepose.app.config import RunConfig
    from edgepose.estimators.factory import open_estimator

    assert inspect.signature(open_estimator).parameters["model"].default == DEFAULT_MODEL
    assert RunConfig().model == DEFAULT_MODEL


def test_models_to_fetch(tmp_path: Path) -> None:
    # a pipeline by its name: `edgepose models fetch` takes its parts, fallback and twins
    assert models_to_fetch(None) == ["movenet-multipose"]
    cfg = tmp_path / "edgepose.toml"
    cfg.write_text('model = "movenet-lightning-edgetpu"\n')
    assert models_to_fetch(cfg) == ["movenet-lightning-edgetpu", "movenet-lightning"]
    cfg.write_text('model = "posenet-mobilenet-v1-075-481x641"\n')
    assert models_to_fetch(cfg) == ["posenet-mobilenet-v1-075-481x641",
                                    "posenet-mobilenet-v1-075-481x641-edgetpu"]  # its derived twin
    cfg.write_text('model = "~/models/mine.tflite"\n')
    assert models_to_fetch(cfg) == []


def test_runs_standalone_with_a_bare_python(tmp_path: Path) -> None:
    """The installer runs the file with the system python3 before edgepose is installed:
    -S -I leaves it the standard library only."""
    osr = tmp_path / "os-release"
    osr.write_text("VERSION_CODENAME=bookworm\n")
    run = subprocess.run([sys.executable, "-S", "-I", str(MODULE), "shell", "--os-release", str(osr),
                          "--arch", "arm64", "--speed", "max"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    values = dict(line.split("=", 1) for line in run.stdout.splitlines())
    pair = pair_for("bookworm", "arm64")
    assert values["LIB_PACKAGE"] == "libedgetpu1-max" and values["LIB_URL"] == pair.libedgetpu.max.url
    assert values["INTERP_KEY"] == pair.interpreter.asset.key
    bad = subprocess.run([sys.executable, "-S", "-I", str(MODULE), "--prog", "install-pi.sh", "shell",
                          "--os-release", str(osr), "--arch", "armhf"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("install-pi.sh: 32-bit userland (armhf)") and bad.stderr.count("\n") == 1
