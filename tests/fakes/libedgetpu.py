"""Build the fake ``libedgetpu.so.1`` (``fake_libedgetpu.c``) with the system C compiler.

The library is the hardware boundary stand-in: a real ``load_delegate`` / ``Interpreter``
loads it through ``LD_LIBRARY_PATH`` in a child process, and ``EDGEPOSE_FAKE_EDGETPU``
picks what ``tflite_plugin_create_delegate`` does (see the C file and the
``fake_libedgetpu`` fixture in tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_libedgetpu.c")
MODE_VARIABLE = "EDGEPOSE_FAKE_EDGETPU"
MODES = ("segv", "hang", "abort", "nodevice", "inert")


def find_compiler() -> str | None:
    """``$CC``, else cc / gcc / clang on PATH."""
    cc = os.environ.get("CC")
    if cc and shutil.which(cc):
        return cc
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def build(out_dir: Path, compiler: str) -> Path:
    """Compile the stub into ``out_dir/libedgetpu.so.1``; CalledProcessError on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / "libedgetpu.so.1"
    # -O0 keeps the null-pointer write (the segv mode) as written.
    subprocess.run([compiler, "-shared", "-fPIC", "-O0", "-o", str(lib), str(SOURCE)],
                   check=True, capture_output=True, text=True, timeout=120)
    return lib


@dataclass(frozen=True)
class FakeLibedgetpu:
    """A built fake: ``path`` is the .so, ``env(mode)`` the environment for a child."""

    path: Path

    @property
    def dir(self) -> Path:
        return self.path.parent

    def env(self, mode: str) -> dict[str, str]:
        """This process's environment with the fake first on LD_LIBRARY_PATH and
        ``EDGEPOSE_FAKE_EDGETPU=mode``."""
        if mode not in MODES:
            raise ValueError(f"unknown fake libedgetpu mode {mode!r}; one of {', '.join(MODES)}")
        env = dict(os.environ)
        old = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = f"{self.dir}{os.pathsep}{old}" if old else str(self.dir)
        env[MODE_VARIABLE] = mode
        return env
