"""The wheel users install (e.g. on the Pi, not editable) carries the model manifests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_every_manifest(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                        str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("edgepose-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {Path(n).name for n in names if n.startswith("edgepose/_manifests/")}
    assert shipped == {p.name for p in (REPO / "models").glob("*.toml")}
    assert "edgepose/_deploy/runtimes.toml" in names  # the Edge TPU runtime pairs (doctor)
    assert not any(n.startswith("edgepose/_deploy/") and not n.endswith("runtimes.toml") for n in names)
    assert "edgepose/py.typed" in names and "edgepose/inference/engine.py" in names and "tools/cli.py" in names
