#!/usr/bin/env bash
# Set up a development checkout: a venv in .venv with edgepose, its tools and test deps.
# Usage: scripts/setup.sh            (dev PC: runtime + tools + tests)
#        scripts/setup.sh runtime    (runtime only, e.g. a desktop without TensorFlow)
set -euo pipefail
cd "$(dirname "$0")/.."
extra="dev"
[ "${1:-}" = "runtime" ] && extra="desktop"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extra}]"
# The linters shellcheck and systemd-analyze let the deploy/ tests run; they are skipped without them.
if ! command -v shellcheck >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null) || echo "shellcheck not installed; its test will be skipped"
fi
echo "edgepose is installed in .venv (activate with: . .venv/bin/activate)"
