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
# Debian packages some tests need, installed when root and absent (the tests skip without
# them): shellcheck (and systemd-analyze) for deploy/, mosquitto (an MQTT broker the MQTT
# tests start on 127.0.0.1), chromium (the headless browser of the --serve page test) and
# a C compiler (the fake libedgetpu.so.1 the Edge TPU failure tests build).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=()
  command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  if [ "${#missing[@]}" -gt 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || echo "not installed: ${missing[*]}; the tests that need them will be skipped"
  fi
fi
# The pygame the Pi installer picks on Bookworm (pygame-ce, deploy/runtimes.toml) in a side
# folder: it cannot share the venv with pygame, and the tests run the renderer and the
# doctor's SDL check on it too (skipped without it).
pygame_ce="$(.venv/bin/python -c "import tomllib; print(tomllib.load(open('deploy/runtimes.toml', 'rb'))['bookworm']['arm64']['pygame']['requirement'])")"
name="${pygame_ce%%==*}"
if [ ! -d ".venv/pygame-ce/${name//-/_}-${pygame_ce##*==}.dist-info" ]; then
  rm -rf .venv/pygame-ce
  .venv/bin/python -m pip install --quiet --target .venv/pygame-ce "${pygame_ce}" || echo "${pygame_ce} not installed; its tests will be skipped"
fi
# Fetch the models into the per-user cache now, so that the first run works offline.
# A folder of pre-downloaded models is used instead of the network when present
# ($EDGEPOSE_MODELS_FROM, by default the shared data folder next to this checkout).
from="${EDGEPOSE_MODELS_FROM:-../shared/models}"
fetch=(.venv/bin/edgepose models fetch --all)
[ -d "${from}" ] && fetch+=(--from "${from}")
"${fetch[@]}" || echo "warning: models not fetched now; edgepose fetches them on first use"
echo "edgepose is installed in .venv (activate with: . .venv/bin/activate)"
