"""What ships with edgepose: the built-in manifests' folder and the default model.

Standard library only, so that ``deploy/install-pi.sh`` can read it (through
``edgepose/host/runtimes.py``, run as a script) before edgepose is installed.
"""

from __future__ import annotations

from pathlib import Path

# The run's default model: edgepose-run, edgepose detect, edgepose doctor, the installer.
DEFAULT_MODEL = "movenet-multipose"

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The source checkout holding the package (an editable install), else None: then the
# manifests (models/) and runtime pairs (deploy/) are the copies shipped in the package.
CHECKOUT: Path | None = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None
MANIFESTS_DIR = CHECKOUT / "models" if CHECKOUT else PACKAGE_DIR / "_manifests"
PAIRS_FILE = CHECKOUT / "deploy" / "runtimes.toml" if CHECKOUT else PACKAGE_DIR / "_deploy" / "runtimes.toml"
