"""Running a single-pose model on crops of a frame, with the costs booked on the job."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.estimators.base import Estimate, Job, ModelEngine, elapsed_ms
from edgepose.estimators.crops import Box, crop_resize


class ModelRunner:
    """One engine in a pipeline: each call invokes it once and books the time on the job
    (``preprocess_ms``, ``invoke_ms`` and, with a ``role``, ``<role>_invoke_ms``,
    ``decode_ms``)."""

    def __init__(self, engine: ModelEngine, role: str = "") -> None:
        self.engine, self.role = engine, role

    def prepare(self, image: npt.NDArray[np.uint8]) -> tuple[Any, Transform, float]:
        """The whole frame as this model's input (what ``prepare`` makes ahead of time)."""
        t0 = time.perf_counter()
        tensor, transform = self.engine.preprocess(image)
        return tensor, transform, elapsed_ms(t0)

    def run(self, job: Job, tensor: Any, transform: Transform) -> Poses:
        """Invoke on a prepared input and decode to source pixels."""
        t0 = time.perf_counter()
        outputs = self.engine.invoke(tensor)
        ms = elapsed_ms(t0)
        job.add_time("invoke_ms", ms)
        if self.role:
            job.add_time(f"{self.role}_invoke_ms", ms)
        job.invokes += 1
        t0 = time.perf_counter()
        poses = self.engine.decode(outputs, transform)
        job.add_time("decode_ms", elapsed_ms(t0))
        return poses

    def on_frame(self, job: Job) -> Poses:
        """On the whole frame, reusing the input ``prepare`` made when there is one."""
        if job.tensor is None or job.transform is None:
            job.tensor, job.transform, ms = self.prepare(job.image)
            job.add_time("preprocess_ms", ms)
        return self.run(job, job.tensor, job.transform)

    def on_boxes(self, job: Job, boxes: Sequence[Box]) -> list[Poses]:
        """The best pose in each box's crop (cut at the model's input size in one
        resampling; the composed transform maps it straight to the frame)."""
        out = []
        for box in boxes:
            t0 = time.perf_counter()
            crop, to_crop = crop_resize(job.image, box, self.engine.input_size)
            tensor, to_model = self.engine.preprocess(crop)  # already at size: quantize only
            job.add_time("preprocess_ms", elapsed_ms(t0))
            out.append(self.run(job, tensor, to_crop.then(to_model)).best())
        return out


def settled(job: Job, schema: str, device: str) -> Estimate:
    """The estimate of a job whose poses ``invoke`` settled already (the next frame's
    crops needed them): ``finish`` of the crop-running estimators touches no model."""
    poses = job.outputs if isinstance(job.outputs, Poses) else Poses.empty(schema)
    return Estimate(poses, job.timings, job.invokes, job.device or device)
