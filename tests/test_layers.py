"""The layer contracts in .importlinter hold for the tree, and they catch a forbidden import.

Each case copies edgepose/ and tools/ into a temp folder, adds one import that breaks a
layer and runs lint-imports there: the named contract must be reported broken (and the
copy without the change must pass, so the failure is the added line's)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("importlinter", reason="import-linter is in the dev extra: pip install -e '.[dev]'")


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
           "sys.exit(c())", "--no-cache", "--no-logo", *(f"--contract={c}" for c in contracts),
           str(root / ".importlinter")]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def copy_tree(tmp_path: Path) -> Path:
    for name in ("edgepose", "tools"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    r = lint_imports(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("module, line, contract", [
    # a decoder reaching for the interpreter: decoders take tensors, never an engine
    ("decoders/movenet.py", "from edgepose.inference import engine", "pure-decoders"),
    # the runtime importing TensorFlow, or the dev-PC tools
    ("core/pose.py", "import tensorflow", "runtime-alone"),
    ("outputs/jsonl.py", "import tools.cli", "runtime-alone"),
    # a lower layer importing a higher one: the layers and, with it, a circle
    ("estimators/crops.py", "from edgepose.app import filters", "layers"),
    ("estimators/crops.py", "from edgepose.app import filters", "no-circles"),
    ("host/display.py", "from edgepose.app import config", "layers"),  # app | host: independent
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = copy_tree(tmp_path)
    clean = lint_imports(root, contract)
    assert clean.returncode == 0 and "1 kept, 0 broken" in clean.stdout, clean.stdout + clean.stderr
    path = root / "edgepose" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    r = lint_imports(root, contract)
    assert r.returncode == 1 and "0 kept, 1 broken" in r.stdout, r.stdout + r.stderr
    assert line.split()[1].removeprefix("edgepose.") in r.stdout  # the report names the import
