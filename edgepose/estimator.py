"""The estimator contract: frame in, ``Estimate`` (poses + stage timings + invoke count +
device) out. The pipeline, ``edgepose detect`` and ``edgepose-tools evaluate`` talk to an
estimator, never to an interpreter.

An estimator works in three stages so that consecutive frames overlap in the pipeline
(an Edge TPU invoke leaves the CPU free for the previous frame's decode):

- ``prepare(image, timestamp)`` (capture thread, CPU): resize and quantize into a ``Job``;
- ``invoke(job)`` (inference thread): everything that needs the accelerator, in frame
  order, on one thread;
- ``finish(job)`` (decode thread, CPU): decode to source-pixel ``Poses``.

``estimate(image)`` runs the three in series (still images, tools). A single-model
engine is one implementation (``SingleModelEstimator``); a two-stage top-down model is
another, its jobs carrying whatever it needs between stages in ``Job.state``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edgepose.pose import Poses
from edgepose.preprocess import Transform


@dataclass(frozen=True)
class Estimate:
    """One frame's result: poses in source pixels, stage times (ms), invokes, device."""

    poses: Poses
    timings: dict[str, float]
    invokes: int = 1
    device: str = "cpu"


@dataclass
class Job:
    """One frame on its way through an estimator's stages.

    ``tensor``/``transform`` are set by ``prepare``, ``outputs`` by ``invoke``;
    ``timings`` collects stage times in ms (``preprocess_ms``, ``invoke_ms``,
    ``decode_ms``, and any an estimator adds); ``device`` is where ``invoke`` ran;
    ``state`` is the estimator's own (crops, proposals).
    """

    image: npt.NDArray[np.uint8]
    timestamp: float = 0.0
    tensor: Any = None
    transform: Transform | None = None
    outputs: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    invokes: int = 0
    device: str = ""
    state: Any = None


@runtime_checkable
class Estimator(Protocol):
    """What the pipeline, ``detect`` and ``evaluate`` need of a pose estimator."""

    @property
    def name(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def schema(self) -> str: ...

    @property
    def multi_pose(self) -> bool: ...

    def prepare(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Job: ...

    def invoke(self, job: Job) -> Job: ...

    def finish(self, job: Job) -> Estimate: ...

    def estimate(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Estimate: ...

    def close(self) -> None: ...


class ModelEngine(Protocol):
    """What ``SingleModelEstimator`` needs of ``edgepose.engine.Engine`` (or a supervised
    engine running it in a worker process)."""

    @property
    def name(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def schema(self) -> str: ...

    @property
    def multi_pose(self) -> bool: ...

    def preprocess(self, frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], Transform]: ...

    def invoke(self, tensor: npt.NDArray[Any]) -> list[Any]: ...

    def decode(self, outputs: list[Any], transform: Transform, **params: Any) -> Poses: ...

    def close(self) -> None: ...


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class BaseEstimator:
    """``estimate`` and context management for estimators that define the three stages."""

    def prepare(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Job:
        raise NotImplementedError

    def invoke(self, job: Job) -> Job:
        raise NotImplementedError

    def finish(self, job: Job) -> Estimate:
        raise NotImplementedError

    def estimate(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Estimate:
        return self.finish(self.invoke(self.prepare(image, timestamp)))

    def close(self) -> None:
        pass

    def __enter__(self) -> BaseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SingleModelEstimator(BaseEstimator):
    """One model, one invoke per frame: preprocess -> invoke -> decode."""

    def __init__(self, engine: ModelEngine, **decode_params: Any) -> None:
        self.engine = engine
        self.decode_params = decode_params

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def device(self) -> str:
        return self.engine.device

    @property
    def schema(self) -> str:
        return self.engine.schema

    @property
    def multi_pose(self) -> bool:
        return self.engine.multi_pose

    def prepare(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Job:
        t0 = time.perf_counter()
        tensor, transform = self.engine.preprocess(image)
        return Job(image, timestamp, tensor, transform, timings={"preprocess_ms": _ms(t0)})

    def invoke(self, job: Job) -> Job:
        t0 = time.perf_counter()
        job.outputs = self.engine.invoke(job.tensor)
        job.timings["invoke_ms"] = _ms(t0)
        job.invokes += 1
        job.device = self.engine.device  # after the call: a supervised engine may have moved
        return job

    def finish(self, job: Job) -> Estimate:
        t0 = time.perf_counter()
        assert job.transform is not None, "finish() needs a prepared and invoked job"
        poses = self.engine.decode(job.outputs, job.transform, **self.decode_params)
        job.timings["decode_ms"] = _ms(t0)
        return Estimate(poses, job.timings, job.invokes, job.device or self.engine.device)

    def close(self) -> None:
        self.engine.close()


EngineOpener = Callable[..., ModelEngine]
"""Opens one model: ``opener(model, device, **options) -> ModelEngine``, the signature of
``edgepose.engine.open_engine`` (in-process). A supervisor that hosts every model of an
estimator in one worker process (one process owns the Edge TPU) passes its own."""


def open_estimator(model: str = "movenet-lightning", device: str = "auto", *,
                   opener: EngineOpener | None = None, **options: Any) -> Estimator:
    """The estimator for ``model`` on ``device``: one model, or a pipeline of models that
    its manifest describes. ``opener`` opens each model (default: in this process with
    ``edgepose.engine.open_engine``; see its options)."""
    if opener is None:
        from edgepose.engine import open_engine as opener
    return SingleModelEstimator(opener(model, device, **options))
