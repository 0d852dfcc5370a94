"""``edgepose doctor``'s host checks: which pygame / SDL draws the TV, and the Pi's power
(throttling since boot, a Pi 5's USB current limit). Read-only, like every doctor check."""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

from edgepose.host import power as pipower
from edgepose.host.doctor import Check

POWER_HINT = (f"the Coral USB Accelerator draws up to {pipower.ACCELERATOR_MA} mA: use the official "
              "supply (Pi 4: 5.1 V 3 A; Pi 5: the 27 W 5.1 V 5 A USB-C supply) and a short cable")
PYGAME_HINT = ("the TV needs an SDL with KMS/DRM: rerun deploy/install-pi.sh (the pygame-ce wheel, "
               "or Debian's python3-pygame on Trixie), or `pip uninstall pygame && pip install pygame-ce`")


def sdl_video_drivers() -> list[str] | None:
    """The video drivers compiled into the SDL that pygame loaded (SDL_GetVideoDriver over
    the library mapped into this process), or None when it cannot be found."""
    try:
        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "/libSDL2-2" in line or "/libSDL2.so" in line})
    except OSError:
        return None
    for lib in libs:
        try:
            sdl = ctypes.CDLL(lib)
            sdl.SDL_GetVideoDriver.restype = ctypes.c_char_p
            sdl.SDL_GetVideoDriver.argtypes = [ctypes.c_int]
            return [sdl.SDL_GetVideoDriver(i).decode() for i in range(sdl.SDL_GetNumVideoDrivers())]
        except (OSError, AttributeError):
            continue
    return None


def check_pygame(display: str) -> Check:
    """Which pygame, on which SDL, and whether that SDL can drive the TV (kmsdrm)."""
    strict = display == "tv"
    if importlib.util.find_spec("pygame") is None:
        status = "fail" if strict else "ok" if display == "none" else "warn"
        return Check("pygame", status, "pygame is not installed", PYGAME_HINT, blocking=strict)
    from edgepose.render.pygame_renderer import import_pygame

    pg = import_pygame()
    flavour = "pygame-ce" if getattr(pg, "IS_CE", False) else "pygame"
    drivers = sdl_video_drivers()
    sdl = ".".join(str(v) for v in pg.get_sdl_version())
    listed = ", ".join(drivers) if drivers is not None else "unknown"
    detail = f"{flavour} {pg.version.ver} on SDL {sdl} (video drivers: {listed})"
    if drivers is None or any(d.lower() == "kmsdrm" for d in drivers):
        return Check("pygame", "ok", detail + ("" if drivers is None else "; kmsdrm: yes"))
    detail += "; kmsdrm: no, so no TV without a desktop"
    if display in ("none", "window"):
        return Check("pygame", "ok", detail)
    return Check("pygame", "fail" if strict else "warn", detail, PYGAME_HINT, blocking=strict)


def check_power(dt_root: Path) -> list[Check]:
    """Under-voltage / throttling since boot, and a Pi 5's USB current limit."""
    checks = []
    value = pipower.read_throttled()
    if value is None:
        checks.append(Check("power", "ok", "throttling not checked (no vcgencmd: not a Raspberry Pi OS)"))
    elif value == 0:
        checks.append(Check("power", "ok", "throttled=0x0: no under-voltage or throttling since boot"))
    else:
        flags = "; ".join(pipower.decode_throttled(value))
        hint = POWER_HINT if value & pipower.UNDER_VOLTAGE else "cool the Pi (heatsink or fan)"
        checks.append(Check("power", "warn", f"throttled={value:#x}: {flags}", hint))
    usb = pipower.read_usb_power(dt_root)
    if usb is not None:
        supply = f"supply {usb.supply_ma} mA" if usb.supply_ma is not None else "supply current unknown"
        limit = usb.usb_limit_ma
        detail = (f"{usb.model}: {supply}, usb_max_current_enable={usb.usb_max_current_enable}, "
                  f"USB ports limited to {limit if limit is not None else 'an unknown'} mA in total")
        if limit is not None and limit < pipower.ACCELERATOR_MA:
            draws = f"; the accelerator draws up to {pipower.ACCELERATOR_MA} mA"
            checks.append(Check("usb-power", "warn", detail + draws,
                                "use the 27 W (5 V 5 A) USB-C supply; usb_max_current_enable=1 in "
                                "/boot/firmware/config.txt lifts the limit, only for a supply that delivers 5 A"))
        else:
            checks.append(Check("usb-power", "ok", detail))
    return checks
