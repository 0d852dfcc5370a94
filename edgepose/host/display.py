"""``edgepose doctor``'s display check: which pygame / SDL draws the TV. Read-only, like
every doctor check."""

from __future__ import annotations

import ctypes
import importlib.util

from edgepose.host.report import Check

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
