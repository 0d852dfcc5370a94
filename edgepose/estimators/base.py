"""The estimator contract: frame in, ``Estimate`` (poses + stage timings + invoke count +
device) out. The pipeline, ``edgepose detect`` and ``edgepose-tools evaluate`` talk to an
estimator, never to an interpreter.

An estimator works in three stages so that consecutive frames overlap in the pipeline
(an Edge TPU invoke leaves the CPU free for the previous frame's decode):

- ``prepare(image, timestamp)`` (capture thread, CPU): resize and quantize into a ``Job``;
- ``invoke(job)`` (inference thread): everything that needs the accelerator, in frame
  order, on one thread;
- ``finish(job)`` (decode thread, CPU): decode to source-pixel ``Poses``.

``estimate(image)`` runs the three in series (still images, tools). Implementations:

- ``SingleModelEstimator``: one model, one invoke (PoseNet multi-pose);
- ``edgepose.estimators.single.SinglePersonEstimator``: a single-pose model (MoveNet) on a square
  crop around the person: the previous frame's keypoints on video, a second pass on a
  still image;
- ``edgepose.estimators.topdown.TopDownEstimator``: a proposer model finds people, a landmark
  model runs on each one's crop (``movenet-multipose``); between proposals the crops
  come from the previous frame's poses.

State carried from frame to frame (where the previous poses were) lives in the
estimator and is read and written in ``invoke``, which sees the frames in order;
``prepare`` runs ahead on another thread and only makes what does not depend on it.

A BlazePose-style pair (person detector + landmark model) fits the same way, without a
change to the pipeline, which only sees this protocol: a decoder kind for each model (the
detector's anchors, the 39 landmarks), a ``Proposer`` (``edgepose.estimators.topdown``)
turning the detector's output into crop boxes, which ``TopDownEstimator`` takes in place
of ``PoseProposer``, and a ``kind = "topdown"`` manifest naming the two models. Its
rotated crops would make ``Transform`` a general 2x3 affine map; ``Transform.to_source``
stays the one place model pixels go back to the frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform


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
    ``timings`` collects times in ms by kind of work, wherever it ran: ``preprocess_ms``
    (resizing, cropping, quantizing), ``invoke_ms`` (model invokes only),
    ``decode_ms`` (decoders, duplicate removal, tracking), and any an estimator adds
    (per model: ``<role>_invoke_ms``); ``invokes`` counts model invokes; ``device`` is
    where ``invoke`` ran; ``state`` is the estimator's own (crops, proposals).
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

    def add_time(self, key: str, ms: float) -> None:
        """Add ``ms`` to the ``key`` timing (several invokes or crops per frame add up)."""
        self.timings[key] = self.timings.get(key, 0.0) + ms


class Described(Protocol):
    """What estimators and engines both tell: a name, where they run (``device`` may
    change under a supervisor), the keypoint schema and whether they find several people."""

    @property
    def name(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def schema(self) -> str: ...

    @property
    def multi_pose(self) -> bool: ...


@runtime_checkable
class Estimator(Described, Protocol):
    """What the pipeline, ``detect`` and ``evaluate`` need of a pose estimator."""

    def prepare(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Job: ...

    def invoke(self, job: Job) -> Job: ...

    def finish(self, job: Job) -> Estimate: ...

    def estimate(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Estimate: ...

    def close(self) -> None: ...


class ModelEngine(Described, Protocol):
    """What ``SingleModelEstimator`` needs of ``edgepose.inference.engine.Engine`` (or a supervised
    engine running it in a worker process)."""

    @property
    def input_size(self) -> tuple[int, int]:
        """The model input (height, width): crops are cut at this size."""
        ...

    def preprocess(self, frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], Transform]: ...

    def invoke(self, tensor: npt.NDArray[Any]) -> list[Any]: ...

    def decode(self, outputs: list[Any], transform: Transform, **params: Any) -> Poses: ...

    def close(self) -> None: ...


ESTIMATOR_STAGES = ("preprocess_ms", "invoke_ms", "decode_ms")  # the timings every estimator gives


def elapsed_ms(t0: float) -> float:
    """Milliseconds since ``t0`` (a ``time.perf_counter()`` reading)."""
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
        return Job(image, timestamp, tensor, transform, timings={"preprocess_ms": elapsed_ms(t0)})

    def invoke(self, job: Job) -> Job:
        t0 = time.perf_counter()
        job.outputs = self.engine.invoke(job.tensor)
        job.timings["invoke_ms"] = elapsed_ms(t0)
        job.invokes += 1
        job.device = self.engine.device  # after the call: a supervised engine may have moved
        return job

    def finish(self, job: Job) -> Estimate:
        t0 = time.perf_counter()
        assert job.transform is not None, "finish() needs a prepared and invoked job"
        poses = self.engine.decode(job.outputs, job.transform, **self.decode_params)
        job.timings["decode_ms"] = elapsed_ms(t0)
        return Estimate(poses, job.timings, job.invokes, job.device or self.engine.device)

    def close(self) -> None:
        self.engine.close()


EngineOpener = Callable[..., ModelEngine]
"""Opens one model: ``opener(model, device, **options) -> ModelEngine``, the signature of
``edgepose.inference.engine.open_engine`` (in-process). A supervisor that hosts every model of an
estimator in one worker process (one process owns the Edge TPU) passes its own."""
