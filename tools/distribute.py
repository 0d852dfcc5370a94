"""Where training runs: one device, several GPUs of one machine (MirroredStrategy), or
several machines (MultiWorkerMirroredStrategy, configured by ``$TF_CONFIG``).

``TF_CONFIG`` is TensorFlow's cluster description, the same JSON on every machine but
for its own ``task``::

    {"cluster": {"worker": ["gpu1.lan:12345", "gpu2.lan:12345"]},
     "task": {"type": "worker", "index": 0}}

The chief (``task.type == "chief"``, else worker 0) writes the checkpoints and the
export into the output folder; the other workers write theirs into
``<out>/worker<index>`` (Keras saves from every worker: variables are read
collectively).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepose.core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cluster:
    """The parts of ``$TF_CONFIG`` training needs."""

    workers: int
    task_type: str
    task_index: int
    has_chief: bool = False

    @property
    def chief(self) -> bool:
        """Writes the real checkpoints and the export."""
        return self.task_type == "chief" or (self.task_index == 0 and not self.has_chief)


def read_tf_config(text: str | None = None) -> Cluster | None:
    """``$TF_CONFIG`` parsed and checked (None when unset); ConfigError in one line."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return None
    fix = ('set it like {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
           '"task": {"type": "worker", "index": 0}} (docs/train.md)')
    try:
        cfg = json.loads(text)
        cluster, task = cfg["cluster"], cfg["task"]
        ttype, index = str(task["type"]), int(task["index"])
        chiefs = list(cluster.get("chief", []))
        workers = list(cluster.get("worker", []))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"TF_CONFIG is not a cluster description ({type(err).__name__}: {err}); {fix}") from None
    members = {"chief": chiefs, "worker": workers}
    if ttype not in members or not 0 <= index < len(members[ttype]):
        raise ConfigError(f"TF_CONFIG task {ttype}:{index} is not in its cluster "
                          f"({len(chiefs)} chief, {len(workers)} worker); {fix}")
    return Cluster(len(chiefs) + len(workers), ttype, index, bool(chiefs))


def strategy() -> Any:
    """MultiWorkerMirroredStrategy when ``$TF_CONFIG`` describes a cluster, else
    MirroredStrategy on several local GPUs, else the default (one device)."""
    import tensorflow as tf

    cluster = read_tf_config()
    if cluster is not None:
        log.info("training on %d machine(s) with MultiWorkerMirroredStrategy (this one: %s %d)",
                 cluster.workers, cluster.task_type, cluster.task_index)
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def worker_out_dir(out: Path) -> Path:
    """Where this process writes: ``out`` for the chief (or a single machine), else
    ``out/worker<index>``."""
    cluster = read_tf_config()
    if cluster is None or cluster.chief:
        return out
    return out / f"worker{cluster.task_index}"
