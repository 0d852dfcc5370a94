"""Shared-memory tensor slots between the supervisor and a worker process.

One slot per hosted model: its input tensor, then each output tensor, laid out from the
shapes and dtypes the worker's interpreter reports. The supervisor creates (and
unlinks) the block; the worker maps it by name. Frames and outputs cross the process
boundary as one ``memcpy`` each way, never pickled.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import numpy.typing as npt

ALIGN = 64  # a cache line: every tensor starts on its own


@dataclass(frozen=True)
class Layout:
    """Where each tensor lives in a slot: (offset, shape, dtype) for the input first,
    then the outputs in the interpreter's order; ``size`` in bytes."""

    tensors: tuple[tuple[int, tuple[int, ...], str], ...]
    size: int

    @classmethod
    def of(cls, details: Sequence[dict[str, Any]]) -> Layout:
        """The layout for interpreter tensor details (``shape``, ``dtype``)."""
        tensors, offset = [], 0
        for d in details:
            shape = tuple(int(n) for n in d["shape"])
            dtype = np.dtype(d["dtype"])
            tensors.append((offset, shape, dtype.str))
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            offset += -(-max(nbytes, 1) // ALIGN) * ALIGN
        return cls(tuple(tensors), max(offset, ALIGN))

    def views(self, buf: Any) -> list[npt.NDArray[Any]]:
        """Numpy arrays over ``buf`` (a memoryview/mmap of at least ``size`` bytes)."""
        return [np.ndarray(shape, np.dtype(dt), buffer=buf, offset=off)
                for off, shape, dt in self.tensors]


class Slot:
    """A block the supervisor owns: created here, unlinked by ``close``. Its name says
    whose it is (``/dev/shm/edgepose-<pid>-<n>-<random>``)."""

    _count = itertools.count()

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        name = f"edgepose-{os.getpid()}-{next(Slot._count)}-{secrets.token_hex(4)}"
        self._shm: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            name=name, create=True, size=layout.size)
        self.name = self._shm.name
        views = layout.views(self._shm.buf)
        self.input, self.outputs = views[0], views[1:]

    def close(self) -> None:
        if self._shm is None:
            return
        self.input = self.outputs = None  # type: ignore[assignment,unused-ignore]  # views first
        shm, self._shm = self._shm, None
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


class Mapping:
    """A worker's view of a supervisor's slot, mapped by name.

    Workers are started through multiprocessing and share the supervisor's resource
    tracker, so attaching registers a name the supervisor already registered (a no-op)
    and the supervisor's ``unlink`` is the one cleanup; on 3.13+ it is not tracked at all.
    """

    def __init__(self, name: str, layout: Layout) -> None:
        if sys.version_info >= (3, 13):
            self._shm = shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
        else:
            self._shm = shared_memory.SharedMemory(name=name)
        views = layout.views(self._shm.buf)
        self.input, self.outputs = views[0], views[1:]

    def close(self) -> None:
        self.input = self.outputs = None  # type: ignore[assignment]
        self._shm.close()
