"""Choose the SDL video driver and screen mode for a ``--display`` value.

On the Pi the TV is driven through KMS/DRM (no X server, no root: the user needs the
``video`` and ``render`` groups for ``/dev/dri/card*``); from a VNC or desktop session
DISPLAY / WAYLAND_DISPLAY is set and a window is used. A driver already named in
SDL_VIDEODRIVER (by the user, or ``dummy`` in tests) is always respected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from edgepose.core.errors import ConfigError

DISPLAYS = ("auto", "tv", "window", "none")
DESKTOP_DRIVERS = ("x11", "wayland", "windows", "cocoa")
GROUPS_HINT = (
    "the user needs read/write access to /dev/dri/card* (sudo usermod -aG video,render $USER, "
    "then log in again) and no desktop holding the screen"
)


@dataclass(frozen=True)
class DriverPlan:
    """What the renderer will try: ``driver`` None means no display at all."""

    display: str
    driver: str | None
    fullscreen: bool
    preset: bool = False  # True when the driver came from SDL_VIDEODRIVER

    @property
    def headless(self) -> bool:
        return self.driver is None


def check_display(display: str) -> str:
    """Validate a ``--display`` value."""
    if display not in DISPLAYS:
        raise ConfigError(
            f"display {display!r} is not known; expected one of {', '.join(DISPLAYS)}"
        )
    return display


def choose_driver(display: str = "auto", environ: Mapping[str, str] | None = None) -> DriverPlan:
    """The SDL driver and mode for ``display`` given the environment (default os.environ).

    - ``none``: no driver.
    - SDL_VIDEODRIVER set: that driver; full-screen for ``tv``, and for ``auto`` unless
      it is a desktop driver.
    - ``window``: x11, or wayland when only WAYLAND_DISPLAY is set.
    - ``tv``: kmsdrm, full-screen.
    - ``auto``: a desktop window when DISPLAY or WAYLAND_DISPLAY is set, else kmsdrm.
    """
    check_display(display)
    env = os.environ if environ is None else environ
    if display == "none":
        return DriverPlan(display, None, False)
    preset = env.get("SDL_VIDEODRIVER", "").strip()
    if preset:
        fullscreen = display == "tv" or (display == "auto" and preset not in DESKTOP_DRIVERS)
        return DriverPlan(display, preset, fullscreen, preset=True)
    desktop = "x11" if env.get("DISPLAY") else "wayland" if env.get("WAYLAND_DISPLAY") else None
    if display == "window":
        return DriverPlan(display, desktop or "x11", False)
    if display == "tv" or desktop is None:
        return DriverPlan(display, "kmsdrm", True)
    return DriverPlan(display, desktop, False)
