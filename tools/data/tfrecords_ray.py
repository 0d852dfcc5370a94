"""The TFRecord conversion as Ray tasks, one per shard: on a local Ray (started here and
stopped afterwards) or on a running cluster (``address``), so an MPII/COCO conversion
scales past one machine.

Each task reads its people's images and writes its shard itself, so on a cluster the
image folder and the output folder must be the same paths on every node (a shared
file system), and every node needs ``edgepose[tools,ray]`` installed. The shards are
the ones ``write_tfrecords`` writes: the same people in the same order (the same
records; not the same bytes, as protobuf writes a feature map in no fixed order).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.data.samples import DataError, PersonSample
from tools.data.tfrecords import plan_shards, to_dict, write_shard

log = logging.getLogger(__name__)

RAY_EXTRA = "pip install 'edgepose[ray]' (or pip install ray)"


def import_ray() -> Any:
    """``ray``, or a DataError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise DataError(f"--ray needs Ray, which is not installed; {RAY_EXTRA}") from None
    return ray


def _connect(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Join ``address`` (or start a local Ray) unless this process already did; True
    when this call started the connection (and should end it)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.WARNING}
    if address:
        kwargs["address"] = address
    elif num_cpus:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DataError(f"cannot start or join {where} ({first}); check `ray status` there, "
                        "or drop the address for a local Ray") from None
    return True


def write_tfrecords_ray(
    samples: Sequence[PersonSample],
    out_dir: str | Path,
    prefix: str = "train",
    num_shards: int | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """``write_tfrecords`` with one Ray task per shard; ``address`` names a running
    cluster (``ray://host:10001`` or ``host:6379``), None starts a local Ray with
    ``num_cpus`` (default: all). Returns the shard paths in order."""
    ray = import_ray()
    paths, chunks = plan_shards(samples, Path(out_dir), prefix, num_shards)
    started = _connect(ray, address, num_cpus)
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(write_shard)
        pending = {task.remote(str(p), [to_dict(s) for s in c]): (p, len(c)) for p, c in zip(paths, chunks)}
        from tqdm import tqdm

        with tqdm(total=len(samples), desc=f"TFRecords {prefix} (Ray)", unit="person",
                  disable=not progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    path, count = pending.pop(ref)
                    try:
                        ray.get(ref)
                    except Exception as err:  # a RayTaskError carries the task's exception
                        cause = getattr(err, "cause", None) or err
                        raise DataError(f"Ray task writing {path.name} failed: {type(cause).__name__}: "
                                        f"{str(cause).strip().splitlines()[0] if str(cause).strip() else ''}") from None
                    bar.update(count)
    finally:
        if started:
            ray.shutdown()
    log.info("wrote %d people into %d shard(s) in %s with Ray", len(samples), len(paths), out_dir)
    return paths
