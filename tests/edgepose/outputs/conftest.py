"""Fixtures of the network-output tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edgepose.outputs.helpers import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running Mosquitto on 127.0.0.1 (a random port), stopped after the test."""
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()
