"""``SupervisedEngine``: a model engine whose interpreter runs in a worker process
(``edgepose.inference.worker.supervisor``), with preprocessing and decoding here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.decoders.base import OutputTensor
from edgepose.inference.engine import ModelIO
from edgepose.inference.worker.lane import Lane
from edgepose.models.registry import ModelSpec


@dataclass
class Route:
    """One place an engine's model can run: a lane and the model's key there."""

    lane: Lane
    key: int
    decoder_params: dict[str, Any] | None
    _io: ModelIO | None = field(default=None, repr=False)

    @property
    def io(self) -> ModelIO | None:
        """Built from the details the lane's worker reported (None before it ever loaded)."""
        if self._io is None and self.key in self.lane.details:
            h = self.lane.hosted[self.key]
            self._io = ModelIO(h.spec, *self.lane.details[self.key], self.decoder_params)
        return self._io


class Outputs(list):
    """Output tensors that remember the model build that produced them (for decode)."""

    def __init__(self, tensors: list[OutputTensor], io: ModelIO) -> None:
        super().__init__(tensors)
        self.io = io


def same_input(a: ModelIO, b: ModelIO) -> bool:
    """Whether a tensor prepared for ``a`` is a valid input of ``b``."""
    ma, mb = a.spec.manifest, b.spec.manifest
    return (list(a.input["shape"]) == list(b.input["shape"]) and a.input_dtype == b.input_dtype
            and a.input_quantization == b.input_quantization
            and (ma.resize, ma.interpolation, ma.mean, ma.std, ma.channels)
                == (mb.resize, mb.interpolation, mb.mean, mb.std, mb.channels))


def takes_input_of(io: ModelIO | None, known: Sequence[ModelIO | None]) -> bool:
    """Whether a tensor prepared for the first known build in ``known`` is a valid input
    of ``io``: the one check before a model's other build (a CPU twin, or the Edge TPU
    build coming back) joins its routes. True while either is not loaded yet."""
    first = next((k for k in known if k is not None), None)
    return io is None or first is None or same_input(first, io)


class SupervisedEngine:
    """A model whose interpreter runs in a worker process: ``preprocess`` and ``decode``
    here, ``invoke`` there (the ``ModelEngine`` interface of ``edgepose.estimators.base``).
    ``device`` is where the last invoke ran ("edgetpu" or "cpu")."""

    def __init__(self, supervisor: Any, routes: list[Route], cpu_spec: ModelSpec | None,
                 num_threads: int | None, decoder_params: dict[str, Any] | None) -> None:
        self._sup = supervisor
        self.routes = routes  # the preferred first; a CPU twin's is added on failover
        self.cpu_spec = cpu_spec
        self.num_threads, self.decoder_params = num_threads, decoder_params
        self._last = next((r for r in routes if r.lane.up), routes[0])

    def ran_on(self, route: Route) -> None:
        """The last invoke ran on ``route`` (``device`` says where)."""
        self._last = route

    def settle(self) -> None:
        """After a failover: the first route whose worker is up is where it runs now."""
        self._last = next((r for r in self.routes if r.lane.up), self._last)

    @property
    def _io(self) -> ModelIO:
        io = self._last.io or next(r.io for r in self.routes if r.io is not None)
        assert io is not None
        return io

    @property
    def spec(self) -> ModelSpec:
        return self._io.spec

    @property
    def name(self) -> str:
        return self._io.name

    @property
    def schema(self) -> str:
        return self._io.schema

    @property
    def multi_pose(self) -> bool:
        return self._io.multi_pose

    @property
    def input_size(self) -> tuple[int, int]:
        return self._io.input_size

    @property
    def device(self) -> str:
        return self._last.lane.kind

    @property
    def pids(self) -> dict[str, int]:
        """The worker process of each device this model can run on (that is running)."""
        return {r.lane.kind: r.lane.worker.pid for r in self.routes
                if r.lane.worker is not None and r.lane.worker.pid is not None}

    def preprocess(self, frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[Any], Transform]:
        return self._io.preprocess(frame)

    def invoke(self, tensor: npt.NDArray[Any]) -> list[OutputTensor]:
        return self._sup.invoke(self, tensor)

    def decode(self, outputs: list[OutputTensor], transform: Transform, **params: Any) -> Poses:
        io = getattr(outputs, "io", None) or self._io
        return io.decode(outputs, transform, **params)

    def close(self) -> None:
        self._sup.release(self)

    def __enter__(self) -> SupervisedEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
