"""Finding worker processes: descendants of a process whose ``/proc/PID/comm`` is the
name the worker gives itself (``edgepose-cpu``, ``edgepose-tpu``)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _parents() -> dict[int, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def workers(root: int, comm: str = "edgepose-") -> list[int]:
    """Live descendants of ``root`` whose process name starts with ``comm``."""
    parents = _parents()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid:
                todo.append(child)
                try:
                    name = Path(f"/proc/{child}/comm").read_text().strip()
                    state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if name.startswith(comm) and state != "Z":
                    found.append(child)
    return sorted(found)


def wait_for(predicate, timeout: float = 60.0, every: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def my_workers(comm: str = "edgepose-") -> list[int]:
    return workers(os.getpid(), comm)
