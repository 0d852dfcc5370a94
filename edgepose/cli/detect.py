"""``edgepose detect``: poses in still images, as COCO results JSON and annotated images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgepose.core.errors import ConfigError
from edgepose.core.imageio import probe_image, read_image, write_image
from edgepose.core.pose import KEYPOINT_THRESHOLD, POSE_THRESHOLD
from edgepose.decoders import DECODER_KINDS
from edgepose.estimators.base import ESTIMATOR_STAGES
from edgepose.estimators.factory import open_estimator
from edgepose.models.builtin import DEFAULT_MODEL
from edgepose.models.manifest import INTERPOLATIONS, RESIZE_MODES, SCHEMA_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect poses in images",
                       description="Detect poses in images; print COCO keypoint results.")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name or .tflite path (default {DEFAULT_MODEL}: several people; "
                        "movenet-lightning for one)")
    p.add_argument("--device", default="auto", help="auto, cpu, edgetpu, usb, pci or :N")
    p.add_argument("--decoder", choices=DECODER_KINDS, help="decoder for a .tflite without manifest")
    p.add_argument("--schema", choices=SCHEMA_NAMES, help="keypoint schema for a .tflite without manifest")
    p.add_argument("--resize", choices=RESIZE_MODES, help="override the manifest's resize mode")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, help="override the manifest's interpolation")
    p.add_argument("--no-crops", dest="crops", action="store_false",
                   help="a single-pose model runs once on the whole image, with no second pass "
                        "on a crop around the person")
    p.add_argument("--json", action="store_true", help="print COCO results JSON (one list for all images)")
    p.add_argument("--output", type=Path, help="write annotated images into this directory")
    p.add_argument("--keypoint-threshold", type=float, default=KEYPOINT_THRESHOLD,
                   help="draw keypoints scoring at least this")
    p.add_argument("--pose-threshold", type=float, default=POSE_THRESHOLD,
                   help="drop poses scoring below this (as edgepose-run)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in ("keypoint_threshold", "pose_threshold"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} {v} is outside 0..1")
    if args.output is not None and not args.output.is_dir():
        if args.output.exists() or not args.output.parent.is_dir():
            raise ConfigError(f"--output {args.output} is not a directory (its parent must exist)")
        try:
            args.output.mkdir()
        except OSError as err:
            raise ConfigError(f"--output {args.output}: cannot create it ({err.strerror}); "
                              "pass a writable folder") from None
    if args.output is not None:
        from edgepose.outputs.files import check_writable_folder

        check_writable_folder(args.output, f"--output {args.output}")
    for p in args.images:  # a bad image fails from its header, before the model loads
        probe_image(p)
    estimator = open_estimator(args.model, args.device, crops=args.crops, decoder=args.decoder,
                               schema=args.schema, resize=args.resize,
                               interpolation=args.interpolation)
    results: list[dict[str, Any]] = []
    stems = [p.stem for p in args.images]
    out_names = [f"{s}_pose.png" if stems.count(s) == 1 else f"{s}_{i}_pose.png"
                 for i, s in enumerate(stems, start=1)]  # a/x.jpg and b/x.jpg: both kept
    try:
        for image_id, path in enumerate(args.images, start=1):
            frame = read_image(path)  # one decoded image at a time
            est = estimator.estimate(frame)
            poses = est.poses.above(args.pose_threshold)
            for r in poses.to_coco_results(image_id):
                r["file_name"] = str(path)
                results.append(r)
            if args.output is not None:
                from edgepose.render import annotate

                write_image(args.output / out_names[image_id - 1],
                            annotate(frame, poses, args.keypoint_threshold))
            del frame  # before the next one is decoded
            if not args.json:
                stages = ", ".join(f"{k[:-3]} {v:.1f} ms" for k, v in est.timings.items()
                                   if k in ESTIMATOR_STAGES)
                print(f"{path}: {len(poses)} pose(s) [{estimator.name} on {est.device}, "
                      f"{est.invokes} invoke(s), {stages}]")
                for i in range(len(poses)):
                    seen = int((poses.scores[i] >= args.keypoint_threshold).sum())
                    print(f"  pose {i}: score {poses.pose_scores[i]:.2f}, "
                          f"{seen}/{poses.num_keypoints} keypoints ≥ {args.keypoint_threshold}")
    finally:
        estimator.close()
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 0
