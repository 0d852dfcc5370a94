"""Fixtures for decoder tests: run a real model from ../shared on a real image.

The interpreter lives here, not in the decoders: decoders stay pure functions of the
output tensors (and their quantization parameters).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from edgepose.decoders.base import OutputTensor
from tests.conftest import shared_path

RunModel = Callable[[str, np.ndarray], list[OutputTensor]]


@pytest.fixture(scope="session")
def run_model() -> RunModel:
    """``run_model(file_name, image)``: outputs of models/coral/<file_name> for a uint8
    image already at the model's input size, as OutputTensors with quantization params."""
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter")
    interpreters: dict[str, object] = {}

    def run(name: str, image: np.ndarray) -> list[OutputTensor]:
        if name not in interpreters:
            path = shared_path("models", "coral", name)
            it = interpreter_mod.Interpreter(str(path), num_threads=1)
            it.allocate_tensors()
            interpreters[name] = it
        it = interpreters[name]
        inp = it.get_input_details()[0]
        assert tuple(inp["shape"][1:3]) == image.shape[:2], "resize to the model input first"
        it.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        it.invoke()
        return [
            OutputTensor(it.get_tensor(o["index"]).copy(), float(o["quantization"][0]),
                         int(o["quantization"][1]), o["name"])
            for o in it.get_output_details()
        ]

    return run


def pil_resize(image: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """Resize with PIL the way Coral's own tests made their references ((h, w) size)."""
    from PIL import Image

    flag = {"nearest": Image.NEAREST, "lanczos": Image.LANCZOS}[method]
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), flag))
