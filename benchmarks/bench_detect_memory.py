"""Peak memory of ``edgepose detect`` on many large photos: it decodes one image at a
time, so the peak stays that of one photo, not of all of them.

    python benchmarks/bench_detect_memory.py [--count 60] [--megapixels 24] [--output]

Makes ``--count`` JPEGs of about ``--megapixels`` MP in a temporary folder by upscaling
the real photos of ../shared/images (each one a different real picture, cycled), runs
``edgepose detect --device cpu`` on all of them in a child process and prints its peak
resident memory (``ru_maxrss``) against the 500 MB budget, with the time per image.
``--output`` also writes the annotated images (into the temporary folder).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, require_shared

BUDGET_MB = 500
PHOTOS = ("ultralytics_bus.jpg", "ultralytics_zidane.jpg", "posenet_test_couple.jpg",
          "tfexamples_image2.jpeg", "tfexamples_image3.jpeg", "coral_squat.bmp")


def make_photos(folder: Path, count: int, megapixels: float, shared: Path) -> list[Path]:
    """``count`` JPEGs of about ``megapixels`` MP, upscaled from real photos; the few
    distinct ones are written once and hard-linked (the bytes do not matter, the sizes do)."""
    from PIL import Image

    made: list[Path] = []
    for i, name in enumerate(PHOTOS[:count]):
        with Image.open(shared / "images" / name) as im:
            rgb = im.convert("RGB")
        scale = math.sqrt(megapixels * 1e6 / (rgb.width * rgb.height))
        big = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BILINEAR)
        path = folder / f"photo_{i:03d}.jpg"
        big.save(path, quality=90)
        made.append(path)
        del big
    paths = list(made)
    for i in range(len(made), count):
        path = folder / f"photo_{i:03d}.jpg"
        os.link(made[i % len(made)], path)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--output", action="store_true", help="also write the annotated images")
    args = ap.parse_args()
    shared = require_shared()
    with tempfile.TemporaryDirectory(prefix="bench_detect_memory_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        photos = make_photos(folder, args.count, args.megapixels, shared)
        from PIL import Image

        with Image.open(photos[0]) as im:
            size = f"{im.width}x{im.height}"
        print(f"made {len(photos)} photos of {size} ({args.megapixels:g} MP) in "
              f"{time.perf_counter() - t0:.1f} s")
        cmd = [sys.executable, "-m", "edgepose.cli.main", "detect", "--device", "cpu", "--json",
               *map(str, photos)]
        if args.output:
            cmd += ["--output", str(folder / "out")]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=REPO)
        took = time.perf_counter() - t0
        if proc.returncode:
            sys.exit(f"detect failed (exit {proc.returncode}): {proc.stderr.strip()}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    verdict = "within" if peak_mb < BUDGET_MB else "OVER"
    print(f"detect: {len(photos)} images in {took:.1f} s ({took / len(photos) * 1e3:.0f} ms/image), "
          f"peak RSS {peak_mb:.0f} MB ({verdict} the {BUDGET_MB} MB budget; "
          f"one decoded image is {args.megapixels * 3:.0f} MB)")


if __name__ == "__main__":
    main()
