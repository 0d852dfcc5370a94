"""Inference in supervised worker processes: a crash, abort or hang of the TFLite
runtime or libedgetpu (a bad runtime pairing, an unplugged accelerator, a power drop)
ends a worker, never ``edgepose-run``; the frame is retried and the worker restarted,
or its model's CPU twin takes over.

``Supervisor().open_engine`` is the ``opener`` of ``edgepose.estimators.factory.open_estimator``.
"""

from __future__ import annotations

from edgepose.inference.worker.lane import invoke_deadline
from edgepose.inference.worker.process import WorkerFailure
from edgepose.inference.worker.remote import SupervisedEngine
from edgepose.inference.worker.supervisor import Supervisor

__all__ = ["SupervisedEngine", "Supervisor", "WorkerFailure", "invoke_deadline"]
