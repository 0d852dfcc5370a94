"""``edgepose-tools dataset``: MPII / COCO annotations -> sharded TFRecords for training."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tools.argtypes import positive_int
from tools.data.coco import read_coco
from tools.data.mpii import read_mpii
from tools.data.samples import PersonSample
from tools.data.tfrecords import write_tfrecords

FORMATS = ("mpii", "coco")


def read_samples(fmt: str, annotations: str | Path, images: str | Path | None = None) -> list[PersonSample]:
    """Read one dataset's annotations ("mpii" tutorial JSON or "coco" keypoints JSON)."""
    return read_mpii(annotations, images) if fmt == "mpii" else read_coco(annotations, images)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``dataset`` to an ``edgepose-tools`` subparser set."""
    p = subparsers.add_parser("dataset", help="write MPII/COCO annotations as sharded TFRecords",
                              description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--format", required=True, choices=FORMATS, help="annotation layout")
    p.add_argument("--annotations", required=True, help="MPII JSON list or COCO person_keypoints JSON")
    p.add_argument("--images", help="image folder (default: MPII: next to the JSON; COCO: images/ next to it)")
    p.add_argument("--out", required=True, help="output folder for the shards (its parent must exist)")
    p.add_argument("--prefix", default="train", help="shard name prefix, e.g. train or val")
    p.add_argument("--shards", type=positive_int, help="number of shards (default: ~1000 people each)")
    p.add_argument("--workers", type=positive_int, help="parallel writer processes (default: CPU count; "
                   "with --ray and no address: the local Ray's CPUs)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="write the shards as Ray tasks: on the cluster at ADDRESS (e.g. ray://head:10001; "
                   "images and --out on a file system every node shares), else on a local Ray "
                   "(needs the ray extra: pip install 'edgepose[ray]')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.ray is not None:
        from tools.data.tfrecords_ray import import_ray

        import_ray()  # a missing extra fails before the annotations are read
    samples = read_samples(args.format, args.annotations, args.images)
    if args.ray is not None:
        from tools.data.tfrecords_ray import write_tfrecords_ray

        paths = write_tfrecords_ray(samples, args.out, prefix=args.prefix, num_shards=args.shards,
                                    address=args.ray or None, num_cpus=args.workers,
                                    progress=not args.no_progress)
    else:
        paths = write_tfrecords(samples, args.out, prefix=args.prefix, num_shards=args.shards,
                                workers=args.workers, progress=not args.no_progress)
    print(f"wrote {len(samples)} people into {len(paths)} shard(s) in {args.out}")
    return 0
