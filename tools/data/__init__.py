"""Training data: MPII / COCO readers, sharded TFRecords and the tf.data pipeline."""

from __future__ import annotations

from tools.data.samples import DataError, PersonSample

__all__ = ["DataError", "PersonSample"]
