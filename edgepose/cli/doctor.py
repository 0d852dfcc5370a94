"""``edgepose doctor``: is this machine ready for ``edgepose-run``? Exit 1 when not."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgepose.cli.common import EXIT_OK, EXIT_RUNTIME
from edgepose.render.driver import DISPLAYS

PROBE_TIMEOUT = 30.0  # seconds; edgepose.host.doctor.PROBE_TIMEOUT (not imported: keeps --help light)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor", help="check the runtime, Edge TPU, camera, display and models",
        description="Check this machine for a live run and say how to fix what is missing: "
                    "the runtime pair, one real Edge TPU invoke (in a child process, so a crashing "
                    "runtime is named), camera, display, power and models. "
                    "Exits 1 when the configured run could not start.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", help="an edgepose-run TOML file to take model/device/source/display from")
    p.add_argument("--model", help="model name or .tflite path to look for (default: from --config)")
    p.add_argument("--device", help="auto, cpu, edgetpu, usb[:N], pci[:N] (default: auto)")
    p.add_argument("--source", help="auto, picamera, a webcam, a file or a URL (default: auto)")
    p.add_argument("--display", choices=DISPLAYS, help="auto, tv, window or none (default: auto)")
    p.add_argument("--probe-timeout", type=float, default=PROBE_TIMEOUT, metavar="SECONDS",
                   help="how long the Edge TPU probe (one real invoke in a child process) may take "
                        "before it counts as hung")
    p.add_argument("--output", action="append", default=None, metavar="SPEC",
                   help="an output to check (file or URL; repeat for several; default: from --config)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def _configured_outputs(cfg: dict[str, Any], extra: list[str] | None) -> tuple[list[str], dict[str, Any]]:
    """The outputs a run with the config file ``cfg`` (and ``--output extra``) would open."""
    outputs = [cfg["json"]] if cfg.get("json") else []
    outputs += list(cfg.get("output", ())) + list(extra or ())
    if cfg.get("record"):
        outputs.append(cfg["record"])
    serve = {"serve": cfg.get("serve"), "serve_token": cfg.get("serve_token")}
    return outputs, serve


def run(args: argparse.Namespace) -> int:
    from edgepose.host.doctor import run_doctor

    settings: dict[str, Any] = {"model": None, "device": "auto", "source": "auto", "display": "auto"}
    cfg: dict[str, Any] = {}
    if args.config:
        from edgepose.app.config import load_toml

        cfg = load_toml(args.config)
    settings.update({k: v for k, v in cfg.items() if k in settings})
    settings.update({k: getattr(args, k) for k in settings if getattr(args, k) is not None})
    outputs, serve = _configured_outputs(cfg, args.output)
    report = run_doctor(**settings, probe_timeout=args.probe_timeout, outputs=outputs, **serve)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.format())
    return EXIT_OK if report.can_start else EXIT_RUNTIME
