#!/usr/bin/env bash
# Install edgepose on Raspberry Pi OS (64-bit, Bookworm or later) with a Coral USB
# Accelerator and a Pi camera. Safe to run again: every step checks before it changes.
#
#   deploy/install-pi.sh [--max] [--service] [--prefix DIR] [--user NAME] [--dry-run]
#
# What it does: adds Coral's apt repo and installs the Edge TPU runtime, picamera2 and
# the SDL/KMS libraries; builds pygame against the system SDL (PyPI wheels bundle an SDL
# without the KMS/DRM driver the TV needs); makes a venv with --system-site-packages
# (so the apt-installed picamera2 is visible); pip-installs this repo with its `pi` extra;
# writes the udev rule for the accelerator; adds the user to video, render and plugdev;
# with --service, installs and enables the systemd unit.
set -euo pipefail

CORAL_REPO="deb [signed-by=/etc/apt/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main"
CORAL_KEY_URL="https://packages.cloud.google.com/apt/doc/apt-key.gpg"
KEYRING=/etc/apt/keyrings/coral-edgetpu.gpg
SOURCES=/etc/apt/sources.list.d/coral-edgetpu.list
UDEV_RULE=/etc/udev/rules.d/99-edgetpu-accelerator.rules
CONFIG_DIR=/etc/edgepose
UNIT=/etc/systemd/system/edgepose.service

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_USER="${SUDO_USER:-$(id -un)}"
PREFIX=""
RUNTIME=libedgetpu1-std
SERVICE=0
DRY_RUN=0

usage() {
    cat <<EOF
usage: $0 [--max] [--service] [--prefix DIR] [--user NAME] [--dry-run]
  --max         install libedgetpu1-max (maximum clock: faster, but the accelerator gets hot)
  --service     install and enable the systemd unit (starts edgepose-run at boot)
  --prefix DIR  where the venv goes (default: ~USER/edgepose; the venv is DIR/.venv)
  --user NAME   the user who runs edgepose (default: ${TARGET_USER})
  --dry-run     print every command instead of running it; change nothing
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --max) RUNTIME=libedgetpu1-max ;;
        --service) SERVICE=1 ;;
        --prefix) PREFIX="${2:?--prefix needs a folder}"; shift ;;
        --user) TARGET_USER="${2:?--user needs a user name}"; shift ;;
        --dry-run) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-pi.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

TARGET_HOME="$(getent passwd "${TARGET_USER}" | cut -d: -f6 || true)"
if [[ -z "${TARGET_HOME}" ]]; then
    echo "install-pi.sh: user '${TARGET_USER}' does not exist; pass --user NAME" >&2
    exit 2
fi
PREFIX="${PREFIX:-${TARGET_HOME}/edgepose}"
VENV="${PREFIX}/.venv"

# Run a command, or only print it under --dry-run.
run() {
    if [[ "${DRY_RUN}" == 1 ]]; then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

# Run a command as root (through sudo unless we already are root).
as_root() {
    if [[ "$(id -u)" == 0 ]]; then run "$@"; else run sudo "$@"; fi
}

# Run a command as the target user (the venv belongs to them, not to root).
as_user() {
    if [[ "$(id -un)" == "${TARGET_USER}" ]]; then run "$@"; else run sudo -u "${TARGET_USER}" -H "$@"; fi
}

# Write stdin to a root-owned file unless it already has exactly that content.
put_file() {
    local path="$1" content
    content="$(cat)"
    if [[ -f "${path}" ]] && [[ "$(cat "${path}")" == "${content}" ]]; then
        echo "unchanged: ${path}"
        return 1
    fi
    if [[ "${DRY_RUN}" == 1 ]]; then
        printf '+ write %s:\n%s\n' "${path}" "${content}"
    else
        printf '%s\n' "${content}" | as_root tee "${path}" >/dev/null
    fi
}

step() { printf '\n== %s\n' "$*"; }

step "Coral apt repository"
if [[ -f "${KEYRING}" ]]; then
    echo "present: ${KEYRING}"
else
    as_root install -d -m 0755 /etc/apt/keyrings
    if [[ "${DRY_RUN}" == 1 ]]; then
        echo "+ curl -fsSL ${CORAL_KEY_URL} | sudo gpg --dearmor -o ${KEYRING}"
    else
        curl -fsSL "${CORAL_KEY_URL}" | as_root gpg --dearmor -o "${KEYRING}"
    fi
fi
echo "${CORAL_REPO}" | put_file "${SOURCES}" || true

step "System packages (${RUNTIME}, picamera2, venv, SDL/KMS for pygame)"
if [[ "${RUNTIME}" == libedgetpu1-max ]]; then
    echo "WARNING: libedgetpu1-max runs the Edge TPU at its maximum clock: the USB Accelerator"
    echo "         gets hot enough to burn; keep it ventilated and out of reach."
fi
PACKAGES=(
    "${RUNTIME}" python3-picamera2 python3-venv python3-pip python3-dev
    libsdl2-dev libsdl2-ttf-dev libsdl2-image-dev libsdl2-mixer-dev libfreetype-dev
    libportmidi-dev libjpeg-dev libdrm2 libgbm1 pkg-config build-essential
)
as_root apt-get update
# The two runtimes conflict; apt swaps one for the other when asked.
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}"

step "Python venv at ${VENV} (with --system-site-packages for picamera2)"
if [[ -x "${VENV}/bin/python" ]]; then
    echo "present: ${VENV}"
else
    as_user mkdir -p "${PREFIX}"
    as_user python3 -m venv --system-site-packages "${VENV}"
fi
as_user "${VENV}/bin/python" -m pip install --upgrade pip
# Built from source so that pygame links the system SDL, which has the kmsdrm driver.
as_user "${VENV}/bin/python" -m pip install --no-binary pygame "pygame>=2.5"
as_user "${VENV}/bin/python" -m pip install "${REPO_DIR}[pi]"
# Debian's python3-simplejpeg (imported by picamera2) is built against numpy 1; the venv
# may hold numpy 2, so give the venv its own simplejpeg wheel built for it.
as_user "${VENV}/bin/python" -m pip install --force-reinstall --no-deps "simplejpeg>=1.8.1"

step "udev rule for the Coral USB Accelerator"
if put_file "${UDEV_RULE}" < "${REPO_DIR}/deploy/99-edgetpu-accelerator.rules"; then
    as_root udevadm control --reload-rules
    as_root udevadm trigger --subsystem-match=usb
fi

step "Groups for ${TARGET_USER}: video, render (the TV via /dev/dri), plugdev (the accelerator)"
for group in video render plugdev; do
    if id -nG "${TARGET_USER}" | tr ' ' '\n' | grep -qx "${group}"; then
        echo "already in ${group}"
    else
        as_root usermod -aG "${group}" "${TARGET_USER}"
        echo "added to ${group}: log out and in again (or reboot) for it to apply"
    fi
done

step "Config ${CONFIG_DIR}/edgepose.toml"
as_root install -d -m 0755 "${CONFIG_DIR}"
if [[ -f "${CONFIG_DIR}/edgepose.toml" ]]; then
    echo "present: ${CONFIG_DIR}/edgepose.toml (kept)"
else
    as_root install -m 0644 "${REPO_DIR}/deploy/edgepose.toml" "${CONFIG_DIR}/edgepose.toml"
fi

if [[ "${SERVICE}" == 1 ]]; then
    step "systemd unit ${UNIT}"
    if [[ "${TARGET_USER}" == root ]]; then
        echo "WARNING: the service would run as root; rerun with --user NAME for a normal user"
    fi
    sed -e "s|^User=.*|User=${TARGET_USER}|" \
        -e "s|^ExecStart=/home/pi/edgepose/.venv|ExecStart=${VENV}|" \
        "${REPO_DIR}/deploy/edgepose.service" | put_file "${UNIT}" || true
    as_root systemctl daemon-reload
    as_root systemctl enable edgepose.service
    echo "start it now with: sudo systemctl start edgepose; logs: journalctl -u edgepose -f"
fi

step "Done"
echo "Plug the accelerator in (or replug it), then check everything with:"
echo "  ${VENV}/bin/edgepose doctor --config ${CONFIG_DIR}/edgepose.toml"
