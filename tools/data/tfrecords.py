"""Write PersonSamples as sharded TFRecords, one worker process per shard.

Each tf.train.Example holds the original encoded image bytes (no re-encoding) and the
annotation: joints (K*2, image pixels), visibility (K), center (2), scale, schema name.
Cropping, resizing and heatmaps happen later in the tf.data pipeline, so one set of
shards serves every input size.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tools.data.samples import DataError, PersonSample

log = logging.getLogger(__name__)

SHARD_SUFFIX = ".tfrecord"


def shard_name(prefix: str, index: int, count: int) -> str:
    return f"{prefix}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def plan_shards(samples: Sequence[PersonSample], out: Path, prefix: str,
                num_shards: int | None) -> tuple[list[Path], list[list[PersonSample]]]:
    """The shard paths and the people in each (sample i goes to shard i mod n); checks
    the output folder and creates it."""
    if not samples:
        raise DataError("no samples to write; check the annotation file and its filters")
    if not out.parent.is_dir():
        raise DataError(f"output folder {out}: parent {out.parent} does not exist; create it first")
    if out.exists() and not out.is_dir():
        raise DataError(f"output folder {out} is a file; pass a folder for the TFRecord shards")
    out.mkdir(exist_ok=True)
    n = max(1, min(num_shards or math.ceil(len(samples) / 1000), len(samples)))
    return [out / shard_name(prefix, i, n) for i in range(n)], [list(samples[i::n]) for i in range(n)]


def write_tfrecords(
    samples: Sequence[PersonSample],
    out_dir: str | Path,
    prefix: str = "train",
    num_shards: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write ``samples`` into ``num_shards`` files ``<prefix>-NNNNN-of-NNNNN.tfrecord``.

    ``num_shards`` defaults to about 1000 people per shard; ``workers`` (default: CPU
    count) processes write shards in parallel. Returns the shard paths in order.
    """
    out = Path(out_dir)
    paths, chunks = plan_shards(samples, out, prefix, num_shards)
    n = len(paths)
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    from tqdm import tqdm

    with tqdm(total=len(samples), desc=f"TFRecords {prefix}", unit="person", disable=not progress) as bar:
        if workers == 1:
            for path, chunk in zip(paths, chunks):
                write_shard(str(path), [to_dict(s) for s in chunk], bar)
        else:
            # spawn, not fork: the parent may already run TensorFlow threads.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = {pool.submit(write_shard, str(p), [to_dict(s) for s in c]): len(c)
                           for p, c in zip(paths, chunks)}
                for fut in as_completed(futures):
                    fut.result()
                    bar.update(futures[fut])
    log.info("wrote %d people into %d shard(s) in %s", len(samples), n, out)
    return paths


def to_dict(s: PersonSample) -> dict[str, Any]:
    return {
        "image_path": s.image_path,
        "joints": s.joints.reshape(-1).tolist(),
        "visibility": s.visibility.tolist(),
        "center": s.center.tolist(),
        "scale": float(s.scale),
        "schema": s.schema,
    }


def write_shard(path: str, records: list[dict[str, Any]], bar: Any = None) -> int:
    """Write one shard (runs in a worker process); returns the number of examples."""
    import tensorflow as tf

    tmp = path + ".part"
    with tf.io.TFRecordWriter(tmp) as writer:
        for r in records:
            writer.write(_example(tf, r).SerializeToString())
            if bar is not None:
                bar.update(1)
    os.replace(tmp, path)
    return len(records)


def _example(tf: Any, r: dict[str, Any]) -> Any:
    with open(r["image_path"], "rb") as f:
        encoded = f.read()

    def floats(v: list[float]) -> Any:
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))

    def raw(v: bytes) -> Any:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    feature = {
        "image/encoded": raw(encoded),
        "image/filename": raw(os.path.basename(r["image_path"]).encode()),
        "joints": floats(r["joints"]),
        "visibility": floats(r["visibility"]),
        "center": floats(r["center"]),
        "scale": floats([r["scale"]]),
        "schema": raw(r["schema"].encode()),
        "num_joints": tf.train.Feature(int64_list=tf.train.Int64List(value=[len(r["visibility"])])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))
