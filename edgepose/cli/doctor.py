"""``edgepose doctor``: is this machine ready for ``edgepose-run``? Exit 1 when not."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgepose.cli.common import EXIT_OK, EXIT_RUNTIME
from edgepose.render.driver import DISPLAYS


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doctor", help="check the runtime, Edge TPU, camera, display and models",
        description="Check this machine for a live run and say how to fix what is missing. "
                    "Exits 1 when the configured run could not start.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", help="an edgepose-run TOML file to take model/device/source/display from")
    p.add_argument("--model", help="model name or .tflite path to look for (default: from --config)")
    p.add_argument("--device", help="auto, cpu, edgetpu, usb[:N], pci[:N] (default: auto)")
    p.add_argument("--source", help="auto, picamera, a webcam, a file or a URL (default: auto)")
    p.add_argument("--display", choices=DISPLAYS, help="auto, tv, window or none (default: auto)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgepose.doctor import run_doctor

    settings: dict[str, Any] = {"model": None, "device": "auto", "source": "auto", "display": "auto"}
    if args.config:
        from edgepose.config import load_toml

        settings.update({k: v for k, v in load_toml(args.config).items() if k in settings})
    settings.update({k: getattr(args, k) for k in settings if getattr(args, k) is not None})
    report = run_doctor(**settings)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.format())
    return EXIT_OK if report.can_start else EXIT_RUNTIME
