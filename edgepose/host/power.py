"""Raspberry Pi power state: the firmware's throttling flags (``vcgencmd get_throttled``)
and the Pi 5's USB current limit, read-only.

A Coral USB Accelerator draws up to 900 mA. A Pi 5 whose supply does not negotiate 5 A
(USB-PD) limits its USB ports to 600 mA in total; under-voltage resets the accelerator
mid-call, which looks like a hang or a crash of the Edge TPU runtime.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgepose.host.report import Check

# Bits of `vcgencmd get_throttled` (Raspberry Pi documentation, "vcgencmd").
THROTTLE_BITS = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred since boot",
    17: "ARM frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}
UNDER_VOLTAGE = (1 << 0) | (1 << 16)
ACCELERATOR_MA = 900
PI5_LIMITED_USB_MA = 600
PI5_FULL_USB_MA = 1600
POWER_HINT = (f"the Coral USB Accelerator draws up to {ACCELERATOR_MA} mA: use the official "
              "supply (Pi 4: 5.1 V 3 A; Pi 5: the 27 W 5.1 V 5 A USB-C supply) and a short cable")


def decode_throttled(value: int) -> list[str]:
    """The flags set in a get_throttled value, in bit order (unknown bits named by number)."""
    return [THROTTLE_BITS.get(bit, f"bit {bit}") for bit in range(32) if value >> bit & 1]


def vcgencmd(*args: str) -> str | None:
    """``vcgencmd ARGS`` output (stripped), or None where there is no vcgencmd or it fails."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        run = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def read_throttled() -> int | None:
    """The get_throttled value ("throttled=0x50005" -> 0x50005), or None."""
    out = vcgencmd("get_throttled")
    if not out or "=" not in out:
        return None
    try:
        return int(out.split("=", 1)[1].strip(), 0)
    except ValueError:
        return None


def _dt_u32(path: Path) -> int | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return int.from_bytes(data[:4], "big") if len(data) >= 4 else None


@dataclass(frozen=True)
class UsbPower:
    """A Pi 5's USB budget: the supply's negotiated current and whether the firmware lets
    USB draw its full 1.6 A (``usb_max_current_enable``)."""

    model: str
    supply_ma: int | None
    usb_max_current_enable: int | None

    @property
    def usb_limit_ma(self) -> int | None:
        if self.usb_max_current_enable is None:
            return None
        return PI5_FULL_USB_MA if self.usb_max_current_enable else PI5_LIMITED_USB_MA


def read_usb_power(dt_root: Path = Path("/proc/device-tree")) -> UsbPower | None:
    """The Pi 5's USB budget from the device tree (``chosen/power/max_current`` and
    ``chosen/power/usb_max_current_enable``, big-endian u32, set by the firmware), else
    ``vcgencmd get_config usb_max_current_enable``; None on other boards."""
    try:
        model = (dt_root / "model").read_bytes().rstrip(b"\0").decode("utf-8", "replace")
    except OSError:
        return None
    if "Raspberry Pi 5" not in model:
        return None
    supply = _dt_u32(dt_root / "chosen" / "power" / "max_current")
    enable = _dt_u32(dt_root / "chosen" / "power" / "usb_max_current_enable")
    if enable is None:
        out = vcgencmd("get_config", "usb_max_current_enable") or ""
        value = out.split("=", 1)[1].strip() if "=" in out else ""
        enable = int(value, 0) if value.lstrip("-").isdigit() else None
    return UsbPower(model, supply, enable)


def check_power(dt_root: Path) -> list[Check]:
    """Under-voltage / throttling since boot, and a Pi 5's USB current limit."""
    checks = []
    value = read_throttled()
    if value is None:
        checks.append(Check("power", "ok", "throttling not checked (no vcgencmd: not a Raspberry Pi OS)"))
    elif value == 0:
        checks.append(Check("power", "ok", "throttled=0x0: no under-voltage or throttling since boot"))
    else:
        flags = "; ".join(decode_throttled(value))
        hint = POWER_HINT if value & UNDER_VOLTAGE else "cool the Pi (heatsink or fan)"
        checks.append(Check("power", "warn", f"throttled={value:#x}: {flags}", hint))
    usb = read_usb_power(dt_root)
    if usb is not None:
        supply = f"supply {usb.supply_ma} mA" if usb.supply_ma is not None else "supply current unknown"
        limit = usb.usb_limit_ma
        detail = (f"{usb.model}: {supply}, usb_max_current_enable={usb.usb_max_current_enable}, "
                  f"USB ports limited to {limit if limit is not None else 'an unknown'} mA in total")
        if limit is not None and limit < ACCELERATOR_MA:
            draws = f"; the accelerator draws up to {ACCELERATOR_MA} mA"
            checks.append(Check("usb-power", "warn", detail + draws,
                                "use the 27 W (5 V 5 A) USB-C supply; usb_max_current_enable=1 in "
                                "/boot/firmware/config.txt lifts the limit, only for a supply that delivers 5 A"))
        else:
            checks.append(Check("usb-power", "ok", detail))
    return checks
