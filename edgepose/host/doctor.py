"""``edgepose doctor``: check this machine for a live run (runtime pair, Edge TPU, camera,
display, power, models) and say, per check, what is wrong and how to fix it.

Every probe is read-only. The Edge TPU is tried for real: one invoke of an Edge TPU model
in a child process under a timeout (edgepose.inference.tpuprobe), so a runtime that segfaults or
hangs is named instead of killing the doctor. The sysfs, /dev and device-tree roots, the
os-release file and the environment are parameters, so tests build a fake machine in a
temp folder (and put fake ``dpkg``/``vcgencmd`` tools and a fake libedgetpu on the paths).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import struct
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgepose.core.errors import ConfigError, EdgePoseError, SourceError
from edgepose.host import runtimes
from edgepose.host.report import Check, Report
from edgepose.inference.tpuprobe import probe_edgetpu
from edgepose.render.driver import GROUPS_HINT, choose_driver

USB_IDS = {("1a6e", "089a"): "not initialised yet (the runtime loads its firmware on first use)",
           ("18d1", "9302"): "initialised and ready"}
USB2_HINT = ("USB 2 link (480 Mb/s): inference is about 3x slower than over USB 3 (5000 Mb/s); "
             "plug the accelerator into a blue USB 3 port with a USB 3 cable")
PICAMERA_HINT = ("sudo apt install python3-picamera2, and use a venv made with "
                 "--system-site-packages (deploy/install-pi.sh does both)")
PAIR_HINT = "rerun deploy/install-pi.sh: it installs this OS's pair from deploy/runtimes.toml"
PROBE_TIMEOUT = 30.0


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def check_platform() -> Check:
    arch = platform.machine()
    bits = struct.calcsize("P") * 8  # the userland's: a 64-bit kernel reports aarch64 under 32-bit Pi OS
    detail = f"Python {platform.python_version()} ({bits}-bit) on {platform.platform()} ({arch})"
    if bits == 32 or arch in ("armv7l", "armv6l"):
        return Check("platform", "warn", detail,
                     "32-bit userland: the Edge TPU interpreters have 64-bit wheels only; "
                     "flash the 64-bit image (Raspberry Pi OS (64-bit))")
    return Check("platform", "ok", detail)


def check_interpreter() -> Check:
    found = runtimes.installed_interpreter()  # the one edgepose.inference.engine uses
    if found is not None:
        return Check("runtime", "ok", f"{found[0]} {found[1]}")
    return Check("runtime", "fail", "no TFLite interpreter (ai_edge_litert or tflite_runtime)",
                 "pip install ai-edge-litert (or reinstall edgepose)", blocking=True)


def check_runtime_pair(os_release: Path, pairs: Path = runtimes.PAIRS_FILE) -> Check:
    """The installed libedgetpu and interpreter against deploy/runtimes.toml's pair."""
    arch = runtimes.dpkg_architecture()
    pair, why = None, "no dpkg: not Raspberry Pi OS"
    if arch:
        codename = runtimes.read_os_release(os_release).get("VERSION_CODENAME", "")
        try:
            pair = runtimes.pair_for(codename, arch, pairs)
        except ConfigError as err:
            why = str(err)
    result = runtimes.compare(pair, runtimes.installed_libedgetpu(), runtimes.installed_interpreter(), why)
    if result.status == "differs":
        return Check("pair", "warn", result.detail, PAIR_HINT)
    return Check("pair", "ok", f"{result.status}: {result.detail}")


def _pairing() -> str:
    """"libedgetpu <package version> with <interpreter> <version>" as installed now."""
    lib = runtimes.installed_libedgetpu()
    interp = runtimes.installed_interpreter()
    return (f"libedgetpu {lib[1] if lib else 'unknown'} with "
            f"{interp[0] + ' ' + interp[1] if interp else 'no interpreter'}")


def edgetpu_model(model: str | None) -> tuple[str, Path | None]:
    """The Edge TPU build to probe with: ``model`` if it is one, else its edgetpu_twin,
    else the default model's; (name, local path or None when not downloaded)."""
    from edgepose.models.registry import get_manifest, get_pipeline, resolve_model
    from edgepose.models.tflite_info import read_model_info

    if model and (model.endswith(".tflite") or "/" in model):
        path = Path(model).expanduser()
        if path.is_file() and read_model_info(path).edgetpu:
            return path.name, path
        model = None
    name = model or runtimes.DEFAULT_MODEL
    try:
        pipeline = get_pipeline(name)
    except EdgePoseError:
        return name, None
    # a pipeline's models share the Edge TPU: probe with its landmark model, or with the
    # fallback landmark it runs when that one is not downloaded
    names = [pipeline.landmark, pipeline.fallback.get("landmark")] if pipeline else [name]
    tried = []
    for part in filter(None, names):
        try:
            m = get_manifest(part)
            part = part if m.device == "edgetpu" else (m.edgetpu_twin or "movenet-lightning-edgetpu")
            tried.append(part)
            return part, resolve_model(part, fetch=False).path
        except EdgePoseError:
            continue
    return (tried or [name])[0], None


def check_edgetpu_runtime(kind: str, tpu: str | None, model: str | None, timeout: float,
                          env: Mapping[str, str] | None = None) -> Check:
    """A real invoke of an Edge TPU model in a child process. A crash or hang is a
    broken runtime pairing (fail, whatever the device); a missing library or accelerator
    only blocks ``--device edgetpu``."""
    if kind == "cpu":
        return Check("libedgetpu", "ok", "not probed (--device cpu)")
    name, path = edgetpu_model(model)
    if path is None:
        return Check("libedgetpu", "warn", f"not probed: the Edge TPU model {name} is not downloaded",
                     f"edgepose models fetch {name}")
    result = probe_edgetpu(path, tpu, timeout=timeout, env=env)
    if result.outcome == "ok":
        return Check("libedgetpu", "ok", f"{_pairing()}: an Edge TPU invoke of {name} took "
                                         f"{result.invoke_ms:.1f} ms")
    if result.outcome == "crash":
        assert result.exit is not None
        return Check("libedgetpu", "fail",
                     f"runtime pairing broken: {_pairing()} (a probe invoke of {name}: {result.exit.what})",
                     f"likely cause: {result.exit.cause}", blocking=True)
    if kind == "edgetpu":
        return Check("libedgetpu", "fail", result.error, blocking=True)
    return Check("libedgetpu", "warn", f"{result.error} (--device auto will use the CPU)")


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
              else usb + pcie)
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


def _check_file_source(spec: str) -> Check:
    """Open a video/image source and read its first frame, as the run would."""
    from edgepose.sources import make_source

    try:
        source = make_source(spec)
        source.open()
        try:
            first = source.read()
        finally:
            source.close()
    except EdgePoseError as err:
        return Check("camera", "fail", str(err), "pass a video, image or folder edgepose can read",
                     blocking=True)
    if first is None:
        return Check("camera", "fail", f"source {spec} has no frame", "pass another --source",
                     blocking=True)
    return Check("camera", "ok", f"file {spec} ({first.size[1]}x{first.size[0]})")


def check_camera(source: str, dev_root: Path, list_cameras: Callable[[], str | None] = _list_cameras) -> Check:
    from edgepose.sources.spec import parse_source

    s = source.strip()
    webcams = sorted(str(p) for p in dev_root.glob("video[0-9]*"))
    try:
        spec = parse_source(s)
    except SourceError as err:
        return Check("camera", "fail", str(err), blocking=True)
    if spec.kind == "stream":
        return Check("camera", "ok", f"stream {s} (not probed)")
    if spec.kind == "webcam":
        node = dev_root / f"video{spec.target}" if isinstance(spec.target, int) else dev_root / Path(s).name
        if node.exists():
            return Check("camera", "ok", f"webcam {node}")
        return Check("camera", "fail", f"webcam {node} not found (present: {', '.join(webcams) or 'none'})",
                     "plug the webcam in, or pick one of the listed nodes", blocking=True)
    if spec.is_file:
        return _check_file_source(s)
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
    if spec.kind == "picamera":
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
                     "pip install pygame-ce (deploy/install-pi.sh picks the right one on the Pi)", blocking=strict)
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
    from edgepose.models.recall import remembered_failure
    from edgepose.models.registry import find_model_file, list_manifests, resolve_model

    try:
        manifests = list_manifests()
    except EdgePoseError as err:
        return [Check("models", "fail", str(err), blocking=True)]
    cached: list[str] = []
    missing: list[str] = []
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
        from edgepose.models.registry import get_pipeline, is_model_path

        pipeline = None if is_model_path(model) else get_pipeline(model)
        parts = [pipeline.proposer, pipeline.landmark] if pipeline else [model]
        for part in parts:  # a pipeline's models, each like a model of its own
            label = f"{model}: {part}" if pipeline else model
            try:
                spec = resolve_model(part, fetch=False)
                checks.append(Check("model", "ok", f"{label} -> {spec.path}"))
            except EdgePoseError as err:
                known = part in manifests
                hint = "it will be downloaded at start (needs internet)" if known else ""
                if known and pipeline and part == pipeline.landmark and pipeline.fallback:
                    hint += f"; offline, {model} runs {pipeline.fallback['landmark']} in its place"
                    if (failed := remembered_failure(part)) is not None:
                        hint = f"not tried at start: {failed}; until then {model} runs " \
                               f"{pipeline.fallback['landmark']} in its place"
                checks.append(Check("model", "warn" if known else "fail", str(err), hint,
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
    dt_root: Path = Path("/proc/device-tree"),
    os_release: Path = Path("/etc/os-release"),
    pairs: Path = runtimes.PAIRS_FILE,
    environ: Mapping[str, str] | None = None,
    list_cameras: Callable[[], str | None] = _list_cameras,
    probe_timeout: float = PROBE_TIMEOUT,
    outputs: Sequence[str] = (),
    serve: str | None = None,
    serve_token: str | None = None,
) -> Report:
    """Run every check for the configured ``model``/``device``/``source``/``display``.
    The Edge TPU probe child gets ``environ`` (default: this process's environment)."""
    from edgepose.host.display import check_pygame
    from edgepose.host.power import check_power
    from edgepose.inference.engine import parse_device

    kind, tpu = parse_device(device)  # ConfigError for an unknown device
    if not 1.0 <= probe_timeout <= 3600.0:  # NaN too: the child's deadline must be a real one
        raise ConfigError(f"probe timeout {probe_timeout:g} s is out of range; pass "
                          "--probe-timeout 1..3600 seconds")
    env = os.environ if environ is None else environ
    report = Report([check_platform(), check_interpreter(), check_runtime_pair(os_release, pairs)])
    report.checks.append(check_edgetpu_runtime(kind, tpu, model, probe_timeout,
                                               None if environ is None else env))
    report.checks += check_tpu_devices(kind, tpu, sysfs_root, dev_root)
    report.checks.append(check_camera(source, dev_root, list_cameras))
    report.checks.append(check_display(display, env, dev_root))
    report.checks.append(check_pygame(display))
    report.checks += check_power(dt_root)
    report.checks += check_models(model)
    report.checks += check_outputs(outputs, serve, serve_token)
    return report


def check_outputs(outputs: Sequence[str], serve: str | None = None,
                  serve_token: str | None = None) -> list[Check]:
    """Each configured output (``json``, ``output``, ``record``, ``serve``): can it be
    written or reached? An unwritable file stops the run (blocking); an unreachable
    network peer only warns, the run reconnects to it."""
    from edgepose.outputs import output_kind
    from edgepose.outputs.probe import probe_output, probe_serve

    checks = []
    for spec in outputs:
        ok, detail = probe_output(spec)
        network = "://" in spec and output_kind(spec) not in ("", "-")
        status = "ok" if ok else ("warn" if network else "fail")
        hint = "" if ok else ("the run starts anyway and reconnects with backoff" if network
                              else "fix the path in the config or flags")
        checks.append(Check("output", status, detail, hint, blocking=not network))
    if serve is not None:
        ok, detail = probe_serve(serve, serve_token)
        checks.append(Check("serve", "ok" if ok else "fail", detail, blocking=True))
    return checks
