"""``edgepose doctor``: check this machine for a live run (runtime, Edge TPU, camera,
display, models) and say, per check, what is wrong and how to fix it.

Every probe is read-only and cheap. The sysfs and /dev roots, the environment and the
delegate loader are parameters, so tests build a fake machine in a temp folder.
"""

from __future__ import annotations

import gc
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edgepose.errors import DeviceError, EdgePoseError, SourceError
from edgepose.render.driver import GROUPS_HINT, choose_driver

USB_IDS = {("1a6e", "089a"): "not initialised yet (the runtime loads its firmware on first use)",
           ("18d1", "9302"): "initialised and ready"}
USB2_HINT = ("USB 2 link (480 Mb/s): inference is about 3x slower than over USB 3 (5000 Mb/s); "
             "plug the accelerator into a blue USB 3 port with a USB 3 cable")
PICAMERA_HINT = ("sudo apt install python3-picamera2, and use a venv made with "
                 "--system-site-packages (deploy/install-pi.sh does both)")


@dataclass
class Check:
    """One line of the report. ``blocking`` fails stop the configured run from starting."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    hint: str = ""
    blocking: bool = False


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def can_start(self) -> bool:
        return not self.reasons

    @property
    def reasons(self) -> list[str]:
        """Why the configured run could not start (empty when it can)."""
        return [f"{c.name}: {c.detail}" for c in self.checks if c.blocking and c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"can_start": self.can_start, "reasons": self.reasons,
                "checks": [asdict(c) for c in self.checks]}

    def format(self) -> str:
        lines = [f"{c.status:<4}  {c.name:<10}  {c.detail}" + (f"\n{'':16}hint: {c.hint}" if c.hint else "")
                 for c in self.checks]
        if self.can_start:
            lines.append("result: the configured run can start")
        else:
            lines.append("result: the configured run cannot start: " + "; ".join(self.reasons))
        return "\n".join(lines)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def check_platform() -> Check:
    arch = platform.machine()
    detail = f"Python {platform.python_version()} on {platform.platform()} ({arch})"
    if arch in ("armv7l", "armv6l"):
        return Check("platform", "warn", detail,
                     "32-bit OS: ai-edge-litert has 64-bit wheels only; use Raspberry Pi OS (64-bit)")
    return Check("platform", "ok", detail)


def check_interpreter() -> Check:
    for dist, module in (("ai-edge-litert", "ai_edge_litert"), ("tflite-runtime", "tflite_runtime")):
        if importlib.util.find_spec(module) is not None:
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                version = "unknown version"
            return Check("runtime", "ok", f"{module} {version}")
    return Check("runtime", "fail", "no TFLite interpreter (ai_edge_litert or tflite_runtime)",
                 "pip install ai-edge-litert (or reinstall edgepose)", blocking=True)


def check_libedgetpu(kind: str, tpu: str | None, loader: Callable[..., Any] | None) -> Check:
    """Load libedgetpu as a delegate (then drop it). Fails only block ``--device edgetpu``."""
    from edgepose.engine import load_edgetpu_delegate

    error = None
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None  # a failed Delegate complains when freed
    try:
        try:
            load_edgetpu_delegate(tpu, loader=loader)  # dropped at once: only a probe
        except DeviceError as err:
            error = str(err)
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    if error is None:
        return Check("libedgetpu", "ok", "loaded, and an Edge TPU answered")
    if kind == "edgetpu":
        return Check("libedgetpu", "fail", error, blocking=True)
    why = "not needed for --device cpu" if kind == "cpu" else "--device auto will use the CPU"
    return Check("libedgetpu", "warn", f"{error} ({why})")


@dataclass(frozen=True)
class UsbTpu:
    sysfs: Path
    vendor: str
    product: str
    speed: str  # Mb/s as sysfs says it: "480", "5000", ... or "" when unknown

    @property
    def state(self) -> str:
        return USB_IDS[(self.vendor, self.product)]


def find_usb_tpus(sysfs_root: Path = Path("/sys")) -> list[UsbTpu]:
    """Coral USB Accelerators in sysfs, before (1a6e:089a) or after (18d1:9302) firmware load."""
    found = []
    for d in sorted((sysfs_root / "bus" / "usb" / "devices").glob("*")):
        ids = (_read(d / "idVendor").lower(), _read(d / "idProduct").lower())
        if ids in USB_IDS:
            found.append(UsbTpu(d, ids[0], ids[1], _read(d / "speed")))
    return found


def check_tpu_devices(kind: str, tpu: str | None, sysfs_root: Path, dev_root: Path) -> list[Check]:
    usb = find_usb_tpus(sysfs_root)
    pcie = sorted(dev_root.glob("apex_*"))
    checks = []
    for dev in usb:
        where = f"USB {dev.vendor}:{dev.product} at {dev.sysfs.name}, {dev.state}"
        if dev.speed == "480":
            checks.append(Check("edgetpu", "warn", f"{where}, 480 Mb/s", USB2_HINT))
        else:
            speed = f", {dev.speed} Mb/s" if dev.speed else ""
            checks.append(Check("edgetpu", "ok", where + speed))
    for node in pcie:
        checks.append(Check("edgetpu", "ok", f"PCIe {node}"))
    wanted = (usb if tpu and tpu.startswith("usb") else pcie if tpu and tpu.startswith("pci")
              else usb + pcie)  # type: ignore[operator]
    if not wanted:
        what = f"no Edge TPU ({tpu})" if tpu else "no Edge TPU found (USB 1a6e:089a / 18d1:9302, PCIe /dev/apex_*)"
        hint = ("plug the Coral USB Accelerator into a USB 3 port; `lsusb` should list it. "
                "For PCIe install gasket-dkms and check /dev/apex_0")
        if kind == "edgetpu":
            checks.append(Check("edgetpu", "fail", what, hint, blocking=True))
        elif kind == "auto":
            checks.append(Check("edgetpu", "warn", f"{what}; --device auto will use the CPU", hint))
        else:
            checks.append(Check("edgetpu", "ok", f"{what}; not needed for --device cpu"))
    return checks


def _is_picamera(source: str) -> bool:
    return source.split(":")[0] in ("picamera", "picam", "libcamera")


def _list_cameras() -> str | None:
    """``rpicam-hello --list-cameras`` output where libcamera's apps are installed."""
    exe = shutil.which("rpicam-hello") or shutil.which("libcamera-hello")
    if exe is None:
        return None
    try:
        run = subprocess.run([exe, "--list-cameras"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout + run.stderr


def check_camera(source: str, dev_root: Path, list_cameras: Callable[[], str | None] = _list_cameras) -> Check:
    s = source.strip()
    webcams = sorted(str(p) for p in dev_root.glob("video[0-9]*"))
    if "://" in s:
        return Check("camera", "ok", f"stream {s} (not probed)")
    if s.isdigit() or s.startswith("/dev/video"):
        node = dev_root / f"video{s}" if s.isdigit() else dev_root / Path(s).name
        if node.exists():
            return Check("camera", "ok", f"webcam {node}")
        return Check("camera", "fail", f"webcam {node} not found (present: {', '.join(webcams) or 'none'})",
                     "plug the webcam in, or pick one of the listed nodes", blocking=True)
    if s != "auto" and not _is_picamera(s):
        if Path(s).expanduser().exists():
            return Check("camera", "ok", f"file {s}")
        return Check("camera", "fail", f"source file {s} not found",
                     "pass an existing video, image or folder with --source", blocking=True)
    picam_hint = PICAMERA_HINT
    has_picam = importlib.util.find_spec("picamera2") is not None
    if has_picam:  # present, but does it import? (numpy 1/2 clash of Debian's simplejpeg)
        from edgepose.sources.picamera import import_picamera2

        try:
            import_picamera2()
        except SourceError as err:
            has_picam, picam_hint = False, str(err)
    listing = list_cameras() if has_picam else None
    cams = None if listing is None else ("No cameras available" not in listing and ": " in listing)
    parts = [f"picamera2 {'importable' if has_picam else 'missing or broken'}",
             f"libcamera cameras: {'unknown' if cams is None else 'found' if cams else 'none'}",
             f"/dev/video*: {len(webcams)}"]
    detail = ", ".join(parts)
    if _is_picamera(s):
        if not has_picam:
            return Check("camera", "fail", detail, picam_hint, blocking=True)
        if cams is False:
            return Check("camera", "fail", detail, "check the ribbon cable, then "
                         "`rpicam-hello --list-cameras`", blocking=True)
        return Check("camera", "ok", detail)
    if (has_picam and cams is not False) or webcams:
        return Check("camera", "ok", detail)
    return Check("camera", "fail", detail, "--source auto needs a Pi camera (" + picam_hint +
                 ") or a webcam; or pass a video file with --source", blocking=True)


def check_display(display: str, environ: Mapping[str, str], dev_root: Path) -> Check:
    plan = choose_driver(display, environ)
    if plan.headless:
        return Check("display", "ok", "none (headless)")
    mode = "full-screen" if plan.fullscreen else "window"
    detail = f"SDL driver {plan.driver}{' (from SDL_VIDEODRIVER)' if plan.preset else ''}, {mode}"
    strict = display != "auto"
    if importlib.util.find_spec("pygame") is None:
        status = "fail" if strict else "warn"
        return Check("display", status, f"{detail}; pygame is not installed",
                     "pip install 'edgepose[pi]'", blocking=strict)
    if plan.driver == "kmsdrm":
        cards = sorted(dev_root.glob("dri/card*"))
        usable = [c for c in cards if os.access(c, os.R_OK | os.W_OK)]
        if not usable:
            why = "no /dev/dri/card*" if not cards else f"no access to {', '.join(map(str, cards))}"
            status = "fail" if strict else "warn"
            fallback = "" if strict else "; auto would run headless"
            return Check("display", status, f"{detail}; {why}{fallback}", GROUPS_HINT, blocking=strict)
        detail += f" on {usable[0]}"
    return Check("display", "ok", detail)


def check_models(model: str | None) -> list[Check]:
    try:
        from edgepose.registry import find_model_file, list_manifests, resolve_model
    except ImportError:
        return [Check("models", "warn", "model registry not available in this build")]
    try:
        manifests = list_manifests()
    except EdgePoseError as err:
        return [Check("models", "fail", str(err), blocking=True)]
    cached, missing = [], []
    for name, m in sorted(manifests.items()):
        try:
            (cached if find_model_file(m) else missing).append(name)
        except EdgePoseError:
            missing.append(name)
    status = "ok" if cached else "warn"
    detail = f"cached: {', '.join(cached) or 'none'}; not downloaded: {', '.join(missing) or 'none'}"
    checks = [Check("models", status, detail,
                    "" if cached else "edgepose models fetch movenet-lightning")]
    if model:
        from edgepose.registry import get_pipeline, is_model_path

        pipeline = None if is_model_path(model) else get_pipeline(model)
        parts = [pipeline.proposer, pipeline.landmark] if pipeline else [model]
        for part in parts:  # a pipeline's models, each like a model of its own
            label = f"{model}: {part}" if pipeline else model
            try:
                spec = resolve_model(part, fetch=False)
                checks.append(Check("model", "ok", f"{label} -> {spec.path}"))
            except EdgePoseError as err:
                known = part in manifests
                checks.append(Check("model", "warn" if known else "fail", str(err),
                                    "it will be downloaded at start (needs internet)" if known else "",
                                    blocking=not known))
    return checks


def run_doctor(
    model: str | None = None,
    device: str = "auto",
    source: str = "auto",
    display: str = "auto",
    *,
    sysfs_root: Path = Path("/sys"),
    dev_root: Path = Path("/dev"),
    environ: Mapping[str, str] | None = None,
    delegate_loader: Callable[..., Any] | None = None,
    list_cameras: Callable[[], str | None] = _list_cameras,
) -> Report:
    """Run every check for the configured ``model``/``device``/``source``/``display``."""
    from edgepose.engine import parse_device

    kind, tpu = parse_device(device)  # ConfigError for an unknown device
    env = os.environ if environ is None else environ
    report = Report([check_platform(), check_interpreter()])
    report.checks.append(check_libedgetpu(kind, tpu, delegate_loader))
    report.checks += check_tpu_devices(kind, tpu, sysfs_root, dev_root)
    report.checks.append(check_camera(source, dev_root, list_cameras))
    report.checks.append(check_display(display, env, dev_root))
    report.checks += check_models(model)
    return report

