#!/usr/bin/env bash
# Install edgepose on Raspberry Pi OS (64-bit: Bookworm or Trixie) with a Coral USB
# Accelerator and a Pi camera. Safe to run again: every step checks before it changes.
#
#   deploy/install-pi.sh [--max] [--service] [--prefix DIR] [--user NAME]
#                        [--accept-changed-assets] [--dry-run]
#
# What it does: picks the Edge TPU runtime pair of this OS release from
# deploy/runtimes.toml (a libedgetpu deb and a TFLite interpreter built against
# compatible TensorFlow versions), downloads both and checks their sha256, installs them;
# installs picamera2 and the KMS/DRM libraries from apt and pygame without a build step
# (the pygame-ce wheel, whose SDL has KMS/DRM, or the OS package where the OS's SDL has
# it); makes a venv with --system-site-packages (so the apt-installed picamera2 is
# visible); pip-installs this repo with its `pi` extra; fetches the default models so the
# first run works offline; writes the udev rule for the accelerator; adds the user to
# video, render and plugdev; with --service, installs and enables the systemd unit.
#
# For tests: EDGEPOSE_OS_RELEASE names the os-release file to read (default
# /etc/os-release); the architecture is `dpkg --print-architecture`.
set -euo pipefail

OS_RELEASE="${EDGEPOSE_OS_RELEASE:-/etc/os-release}"
STATE_DIR="${EDGEPOSE_STATE_DIR:-/var/lib/edgepose}"
RECORD="${STATE_DIR}/assets.sha256"
UDEV_RULE=/etc/udev/rules.d/99-edgetpu-accelerator.rules
CONFIG_DIR=/etc/edgepose
UNIT=/etc/systemd/system/edgepose.service
# Written by earlier versions of this script; Coral's apt libedgetpu (TensorFlow 2.5)
# crashes with current interpreters, so the repository goes.
OLD_CORAL_SOURCES=/etc/apt/sources.list.d/coral-edgetpu.list
OLD_CORAL_KEYRING=/etc/apt/keyrings/coral-edgetpu.gpg

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_USER="${SUDO_USER:-$(id -un)}"
PREFIX=""
SPEED=std
SERVICE=0
DRY_RUN=0
ACCEPT_CHANGED=0

usage() {
    cat <<EOF
usage: $0 [--max] [--service] [--prefix DIR] [--user NAME] [--accept-changed-assets] [--dry-run]
  --max         install libedgetpu1-max (maximum clock: faster, but the accelerator gets hot)
  --service     install and enable the systemd unit (starts edgepose-run at boot)
  --prefix DIR  where the venv goes (default: ~USER/edgepose; the venv is DIR/.venv)
  --user NAME   the user who runs edgepose (default: ${TARGET_USER})
  --accept-changed-assets
                install a downloaded runtime whose sha256 differs from the one recorded
                at its first install (only when you know the upload changed)
  --dry-run     print every command instead of running it; change nothing
EOF
}

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

die() { echo "install-pi.sh: $*" >&2; exit "${2:-1}"; }

# The sha256 recorded for an asset at its first install, or nothing.
recorded_hash() {
    [[ -f "${RECORD}" ]] || return 0
    awk -v key="$1" '$2 == key { hash = $1 } END { if (hash) print hash }' "${RECORD}"
}

# Say how an asset will be checked once downloaded.
describe_verification() {
    local key="$1" pinned="$2" recorded
    recorded="$(recorded_hash "${key}")"
    if [[ -n "${pinned}" ]]; then
        echo "verify: ${key} must have sha256 ${pinned} (pinned in deploy/runtimes.toml)"
    elif [[ -n "${recorded}" ]]; then
        echo "verify: ${key} must have sha256 ${recorded} (no hash pinned; recorded in ${RECORD} at its first install)"
    else
        echo "verify: ${key} has no pinned sha256 (upstream publishes none): its sha256 is printed and recorded in ${RECORD}, and a later run refuses a changed file"
    fi
}

# Check a downloaded asset: a pinned hash must match; an unpinned one must match the hash
# recorded at first install (else it is recorded now). Exits 1 on a mismatch.
verify_asset() {
    local file="$1" key="$2" pinned="$3" actual recorded tmp
    actual="$(sha256sum "${file}" | cut -d' ' -f1)"
    if [[ -n "${pinned}" ]]; then
        [[ "${actual}" == "${pinned}" ]] || die "${key} has sha256 ${actual}, not the ${pinned} pinned in deploy/runtimes.toml: not installing it (a corrupt or replaced download)"
        echo "verified: ${key} sha256 ${actual} (pinned)"
        return
    fi
    recorded="$(recorded_hash "${key}")"
    if [[ "${recorded}" == "${actual}" ]]; then
        echo "verified: ${key} sha256 ${actual} (as recorded at its first install)"
        return
    fi
    if [[ -n "${recorded}" && "${ACCEPT_CHANGED}" != 1 ]]; then
        die "${key} changed since its first install (sha256 ${recorded}, now ${actual}): not installing it; rerun with --accept-changed-assets if the new upload is expected"
    fi
    echo "sha256 ${actual}  ${key} (no hash pinned: recorded in ${RECORD}; pin it in deploy/runtimes.toml once checked)"
    tmp="$(mktemp)"
    { if [[ -f "${RECORD}" ]]; then awk -v key="${key}" '$2 != key' "${RECORD}"; fi
      printf '%s  %s\n' "${actual}" "${key}"; } > "${tmp}"
    as_root install -d -m 0755 "${STATE_DIR}"
    as_root install -m 0644 "${tmp}" "${RECORD}"
    rm -f "${tmp}"
}

# Download a URL (curl) or a PyPI requirement (pip download) into DIR; sets FETCHED to
# the file.
fetch_asset() {
    local dir="$1" url="$2" requirement="$3"
    if [[ -n "${url}" ]]; then
        FETCHED="${dir}/${url##*/}"
        as_user curl -fL --retry 3 --connect-timeout 30 -o "${FETCHED}.part" "${url}"
        as_user mv -f "${FETCHED}.part" "${FETCHED}"
    else
        dir="${dir}/${requirement}"
        as_user rm -rf "${dir}"
        as_user "${VENV}/bin/python" -m pip download --quiet --no-deps --only-binary=:all: -d "${dir}" "${requirement}"
        FETCHED="$(find "${dir}" -maxdepth 1 -name '*.whl' -print -quit 2>/dev/null || true)"
        FETCHED="${FETCHED:-${dir}/(the wheel pip picks for this machine)}"
    fi
}

# True when the OS no longer provides libgcc1, which feranick's debs still depend on.
needs_libgcc1_fix() {
    ! dpkg-query -W -f='${Provides}\n' libgcc-s1 2>/dev/null | grep -qw libgcc1 &&
        ! dpkg-query -W -f='${Status}\n' libgcc1 2>/dev/null | grep -q 'ok installed'
}

main() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --max) SPEED=max ;;
            --service) SERVICE=1 ;;
            --prefix) PREFIX="${2:?--prefix needs a folder}"; shift ;;
            --user) TARGET_USER="${2:?--user needs a user name}"; shift ;;
            --accept-changed-assets) ACCEPT_CHANGED=1 ;;
            --dry-run) DRY_RUN=1 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option '$1' (see --help)" 2 ;;
        esac
        shift
    done

    TARGET_HOME="$(getent passwd "${TARGET_USER}" | cut -d: -f6 || true)"
    [[ -n "${TARGET_HOME}" ]] || die "user '${TARGET_USER}' does not exist; pass --user NAME" 2
    PREFIX="${PREFIX:-${TARGET_HOME}/edgepose}"
    VENV="${PREFIX}/.venv"
    DOWNLOADS="${PREFIX}/downloads"

    step "Edge TPU runtime pair for this machine"
    local arch pair_vars
    arch="$(dpkg --print-architecture 2>/dev/null || true)"
    [[ -n "${arch}" ]] || die "dpkg --print-architecture failed: this installer is for Raspberry Pi OS (Debian)" 2
    pair_vars="$(python3 "${REPO_DIR}/edgepose/host/runtimes.py" --prog install-pi.sh shell \
        --os-release "${OS_RELEASE}" --arch "${arch}" --speed "${SPEED}")" || exit 2
    # Our own reader's output: shell assignments quoted with shlex.quote.
    eval "${pair_vars}"
    echo "machine: ${PAIR_NAME} (${OS_RELEASE}, dpkg architecture ${arch}), Python ${SYSTEM_PYTHON}"
    echo "pair: ${PAIR_DESCRIPTION}"
    echo "evidence: ${PAIR_EVIDENCE}"
    echo "libedgetpu: ${LIB_URL}"
    describe_verification "${LIB_KEY}" "${LIB_SHA256}"
    echo "interpreter: ${INTERP_URL:-${INTERP_REQUIREMENT} from PyPI}"
    describe_verification "${INTERP_KEY}" "${INTERP_SHA256}"
    echo "pygame: ${PYGAME_REQUIREMENT} ($([[ "${PYGAME_SOURCE}" == pip ]] && echo "wheel with SDL KMS/DRM" || echo "the OS package; its SDL has KMS/DRM"))"
    if [[ "${SYSTEM_PYTHON}" != "${PAIR_PYTHON}" ]]; then
        local why="python3 is ${SYSTEM_PYTHON} but the ${PAIR_NAME} pair's wheels are for Python ${PAIR_PYTHON}"
        [[ "${DRY_RUN}" == 1 ]] || die "${why}: run this on Raspberry Pi OS ${PAIR_NAME} as flashed" 2
        echo "WARNING: ${why}: a real run would stop here"
    fi
    if [[ "${SPEED}" == max ]]; then
        echo "WARNING: libedgetpu1-max runs the Edge TPU at its maximum clock: the USB Accelerator"
        echo "         gets hot enough to burn; keep it ventilated and out of reach."
    fi

    if [[ -e "${OLD_CORAL_SOURCES}" || -e "${OLD_CORAL_KEYRING}" ]]; then
        step "Removing Coral's apt repository (its libedgetpu crashes with current interpreters)"
        as_root rm -f "${OLD_CORAL_SOURCES}" "${OLD_CORAL_KEYRING}"
    fi

    step "System packages (picamera2, venv, libusb, KMS/DRM and EGL libraries for the TV)"
    local packages=(python3-picamera2 python3-venv python3-pip libusb-1.0-0 libdrm2 libgbm1 libegl1 libgles2 ca-certificates curl)
    [[ "${PYGAME_SOURCE}" == apt ]] && packages+=("${PYGAME_REQUIREMENT}")
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"

    step "Python venv at ${VENV} (with --system-site-packages for picamera2)"
    if [[ -x "${VENV}/bin/python" ]]; then
        echo "present: ${VENV}"
    else
        as_user mkdir -p "${PREFIX}"
        as_user python3 -m venv --system-site-packages "${VENV}"
    fi
    as_user "${VENV}/bin/python" -m pip install --quiet --upgrade pip
    local constraints="${VENV}/edgepose-constraints.txt"
    if [[ "${DRY_RUN}" == 1 ]]; then
        printf '+ write %s:\n%s\n' "${constraints}" "${PIP_CONSTRAINTS}"
    else
        printf '%s\n' "${PIP_CONSTRAINTS}" | as_user tee "${constraints}" >/dev/null
    fi
    local pip=("${VENV}/bin/python" -m pip install --constraint "${constraints}")

    step "Downloading and checking the runtime pair"
    local deb wheel
    as_user mkdir -p "${DOWNLOADS}"
    fetch_asset "${DOWNLOADS}" "${LIB_URL}" ""
    deb="${FETCHED}"
    fetch_asset "${DOWNLOADS}" "${INTERP_URL}" "${INTERP_REQUIREMENT}"
    wheel="${FETCHED}"
    if [[ "${DRY_RUN}" == 1 ]]; then
        describe_verification "${LIB_KEY}" "${LIB_SHA256}"
        describe_verification "${INTERP_KEY}" "${INTERP_SHA256}"
    else
        verify_asset "${deb}" "${LIB_KEY}" "${LIB_SHA256}"
        verify_asset "${wheel}" "${INTERP_KEY}" "${INTERP_SHA256}"
    fi

    step "Edge TPU runtime ${LIB_PACKAGE} ${LIB_VERSION}"
    if dpkg-query -W -f='${Status} ${Version}\n' "${LIB_PACKAGE}" 2>/dev/null | grep -qx "install ok installed ${LIB_VERSION}"; then
        echo "present: ${LIB_PACKAGE} ${LIB_VERSION}"
    else
        if [[ "${SPEED}" == max ]]; then
            # Its preinst asks libedgetpu/accepted-eula (critical); unanswered, a
            # non-interactive install declines and aborts. Answering it here is the consent
            # --max stands for (see the warning above).
            if [[ "${DRY_RUN}" == 1 ]]; then
                echo "+ echo 'libedgetpu1-max libedgetpu/accepted-eula boolean true' | debconf-set-selections"
            else
                echo 'libedgetpu1-max libedgetpu/accepted-eula boolean true' | as_root debconf-set-selections
            fi
        fi
        if needs_libgcc1_fix; then
            # The debs still declare "Depends: libgcc1", the pre-Debian-11 name of
            # libgcc-s1; where nothing provides it any more, install a copy that says libgcc-s1.
            echo "note: this OS no longer provides libgcc1, which ${LIB_KEY} depends on; installing a copy that depends on libgcc-s1 (the same library)"
            local tree="${DOWNLOADS}/libedgetpu-repack"
            as_user rm -rf "${tree}"
            as_user dpkg-deb -R "${deb}" "${tree}"
            as_user sed -i -E '/^(Pre-)?Depends:/s/\blibgcc1\b/libgcc-s1/' "${tree}/DEBIAN/control"
            deb="${DOWNLOADS}/${LIB_KEY%.deb}+libgcc-s1.deb"
            as_user dpkg-deb -b --root-owner-group "${tree}" "${deb}"
        fi
        # std and max conflict; apt swaps one for the other, and a newer build is replaced
        # by the pair's (the pair is what works with the interpreter below).
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades "${deb}"
    fi

    step "edgepose and its runtime into the venv"
    as_user "${pip[@]}" "${wheel}"
    if [[ "${PYGAME_SOURCE}" == pip ]]; then
        # pygame and pygame-ce both install the `pygame` package: drop a pygame the venv
        # may hold (earlier versions of this script built one from source).
        as_user "${VENV}/bin/python" -m pip uninstall --yes --quiet pygame
        as_user "${pip[@]}" "${PYGAME_REQUIREMENT}"
    else
        # The OS's pygame (installed above) is seen through --system-site-packages only
        # when the venv has none of its own.
        as_user "${VENV}/bin/python" -m pip uninstall --yes --quiet pygame pygame-ce
    fi
    as_user "${pip[@]}" "${REPO_DIR}[pi]"
    # Debian's python3-simplejpeg (imported by picamera2) may be built against another
    # numpy than the venv's: give the venv its own simplejpeg wheel.
    as_user "${pip[@]}" --force-reinstall --no-deps "simplejpeg>=1.8.1"

    step "Config ${CONFIG_DIR}/edgepose.toml"
    as_root install -d -m 0755 "${CONFIG_DIR}"
    if [[ -f "${CONFIG_DIR}/edgepose.toml" ]]; then
        echo "present: ${CONFIG_DIR}/edgepose.toml (kept)"
    else
        as_root install -m 0644 "${REPO_DIR}/deploy/edgepose.toml" "${CONFIG_DIR}/edgepose.toml"
    fi

    step "Models for the first run (so it works offline)"
    local config="${CONFIG_DIR}/edgepose.toml" models=()
    [[ -f "${config}" ]] || config="${REPO_DIR}/deploy/edgepose.toml"
    mapfile -t models < <(python3 "${REPO_DIR}/edgepose/host/runtimes.py" models --config "${config}")
    if [[ ${#models[@]} -gt 0 ]]; then
        as_user "${VENV}/bin/edgepose" models fetch "${models[@]}"
    else
        echo "the configured model is a file: nothing to fetch"
    fi

    step "udev rule for the Coral USB Accelerator"
    if put_file "${UDEV_RULE}" < "${REPO_DIR}/deploy/99-edgetpu-accelerator.rules"; then
        as_root udevadm control --reload-rules
        as_root udevadm trigger --subsystem-match=usb
    fi

    step "Groups for ${TARGET_USER}: video, render (the TV via /dev/dri), plugdev (the accelerator)"
    local group
    for group in video render plugdev; do
        if id -nG "${TARGET_USER}" | tr ' ' '\n' | grep -qx "${group}"; then
            echo "already in ${group}"
        else
            as_root usermod -aG "${group}" "${TARGET_USER}"
            echo "added to ${group}: log out and in again (or reboot) for it to apply"
        fi
    done

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
    echo "Power: on a Raspberry Pi 5 with a 3 A supply the firmware limits the USB ports to 600 mA"
    echo "       in total, and the Coral USB Accelerator draws up to 900 mA: use the 27 W (5 V 5 A)"
    echo "       USB-C supply. (usb_max_current_enable=1 in /boot/firmware/config.txt lifts the"
    echo "       limit; set it only for a supply that delivers 5 A.) edgepose doctor reads both."
    echo "Plug the accelerator in (or replug it), then check everything with:"
    echo "  ${VENV}/bin/edgepose doctor --config ${CONFIG_DIR}/edgepose.toml"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
