"""What the TFLite runtime prints on stderr while an interpreter loads in-process (detect,
--no-worker) goes to the debug log; a WARNING logged meanwhile still reaches the terminal.

Each case is a real process: a logging setup like the CLIs' (``setup_logging``, which
captures fd 2 for good) or a library user's (``logging.basicConfig``), then an engine
opened in-process while the interpreter class (the third-party one, subclassed) logs a
warning and writes to fd 2 the way native code does, before loading the real model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, shared_path

SCRIPT = textwrap.dedent("""
    import logging, os, sys
    if sys.argv[2] == "cli":
        from edgepose.cli.common import setup_logging
        setup_logging("INFO")
    else:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from edgepose.inference.engine import interpreter_module, open_engine
    module = interpreter_module()
    Base = module.Interpreter

    class Loud(Base):
        def __init__(self, *args, **kwargs):
            logging.getLogger("edgepose.test").warning("warned while the interpreter loads")
            os.write(2, b"native chatter from the runtime\\n")
            super().__init__(*args, **kwargs)

    module.Interpreter = Loud
    engine = open_engine(sys.argv[1], "cpu")
    logging.getLogger("edgepose.test").warning("loaded %s", engine.name)
    os.write(2, b"after loading: fd 2 as it was\\n")
""")


@pytest.mark.parametrize("setup", ["cli", "library"])
def test_a_warning_during_the_load_reaches_the_terminal(setup: str) -> None:
    shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")  # found by name there
    r = subprocess.run([sys.executable, "-c", SCRIPT, "movenet-lightning", setup], cwd=REPO, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "WARNING edgepose.test: warned while the interpreter loads" in lines, r.stderr
    assert any(line.startswith("WARNING edgepose.test: loaded ") for line in lines), r.stderr
    # native writes during the load are not on the terminal (INFO level: the debug log is off)
    assert "native chatter" not in r.stderr and "XNNPACK" not in r.stderr, r.stderr
    if setup == "library":  # fd 2 is given back after the load: later native writes show
        assert "after loading: fd 2 as it was" in lines, r.stderr
