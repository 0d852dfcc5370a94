#!/usr/bin/env bash
# The test command: set up .venv (idempotent), lint and type-check the runtime, then run
# the whole suite. Tests read real models and data from ../shared (override with
# EDGEPOSE_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "ruff check edgepose/ and mypy (settings in pyproject.toml)"
.venv/bin/ruff check edgepose
.venv/bin/mypy
echo "lint-imports: the layers of edgepose/ (contracts in .importlinter)"
.venv/bin/lint-imports --no-logo
echo "vulture: no dead code in edgepose/ (reasons for the names it cannot see used: scripts/vulture_whitelist.py)"
.venv/bin/vulture edgepose scripts/vulture_whitelist.py --min-confidence 60
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when a selection collects no test (e.g. `-m edgetpu` off the Pi).
if [ "$rc" = 5 ]; then echo "no tests selected"; exit 0; fi
exit "$rc"
