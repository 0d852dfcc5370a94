"""The worker's parts, each directly: shared-memory slots, the child's protocol over a real
pipe to a real child process, and a lane hosting real models."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import ModelError
from edgepose.inference.engine import open_engine
from edgepose.inference.worker import child
from edgepose.inference.worker.lane import Hosted, Lane
from edgepose.inference.worker.process import LOAD_TIMEOUT_S, context
from edgepose.inference.worker.remote import takes_input_of
from edgepose.inference.worker.shm import Layout, Mapping, Slot
from edgepose.models.registry import resolve_model
from tests.conftest import load_rgb, shared_path

MODEL = "movenet-lightning"


@pytest.fixture
def spec():  # type: ignore[no-untyped-def]
    shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")
    return resolve_model(MODEL)


def squat_tensor() -> np.ndarray:
    eng = open_engine(MODEL, "cpu")
    tensor, _ = eng.preprocess(load_rgb(shared_path("images", "coral_squat.bmp")))
    return tensor


# ---- shared memory -------------------------------------------------------------------

def test_a_slot_is_shared_with_a_mapping_and_unlinked_on_close() -> None:
    layout = Layout.of([{"shape": [4], "dtype": np.uint8}, {"shape": [2], "dtype": np.float32}])
    slot = Slot(layout)
    path = Path("/dev/shm") / slot.name
    try:
        assert path.exists() and slot.name.startswith("edgepose-")
        other = Mapping(slot.name, layout)
        slot.input[...] = [1, 2, 3, 4]
        other.outputs[0][...] = [0.5, -1.5]
        assert other.input.tolist() == [1, 2, 3, 4] and slot.outputs[0].tolist() == [0.5, -1.5]
        other.close()
    finally:
        slot.close()
    assert not path.exists()
    slot.close()  # twice is fine


# ---- the child's protocol ------------------------------------------------------------

@pytest.mark.parametrize("msg", [("invoke", 7), ("done", 65535)])
def test_invoke_and_done_are_five_bytes(msg: tuple) -> None:
    data = child.encode(msg)
    assert len(data) == 5 and child.decode(data) == msg


def test_other_messages_round_trip() -> None:
    msg = ("opened", 3, [{"shape": [1, 2], "dtype": "uint8"}], [])
    assert child.decode(child.encode(msg)) == msg


def test_a_child_speaks_the_protocol(spec) -> None:  # type: ignore[no-untyped-def]
    """hello; open -> stage ... opened; attach; invoke -> done with the outputs in the
    slot, equal to an in-process engine's; a bad model -> failed; close -> the child ends."""
    tensor = squat_tensor()
    ctx = multiprocessing.get_context("spawn")
    parent, end = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=child.main, args=(end, "cpu", "edgepose-test", 30), daemon=True)
    proc.start()
    end.close()
    slot = None
    try:
        def recv(timeout: float = 60.0) -> tuple:
            assert parent.poll(timeout), "the child did not answer"
            return child.decode(parent.recv_bytes())

        assert recv() == ("hello", proc.pid)
        parent.send_bytes(child.encode(("open", 1, spec.manifest.to_dict(), str(spec.path), None, 1)))
        msg = recv()
        while msg[0] == "stage":
            msg = recv()
        assert msg[0] == "opened" and msg[1] == 1
        inputs, outputs = msg[2], msg[3]
        assert list(inputs[0]["shape"]) == list(tensor.shape)
        slot = Slot(Layout.of(inputs + outputs))
        parent.send_bytes(child.encode(("attach", 1, slot.name, slot.layout)))
        slot.input[...] = tensor
        parent.send_bytes(child.encode(("invoke", 1)))
        assert recv() == ("done", 1)
        local = open_engine(MODEL, "cpu").invoke(tensor)
        np.testing.assert_array_equal(slot.outputs[0], local[0].data)

        bad = spec.manifest.to_dict()
        parent.send_bytes(child.encode(("open", 2, bad, str(spec.path.with_name("missing.tflite")), None, 1)))
        msg = recv()
        while msg[0] == "stage":
            msg = recv()
        assert msg[0] == "failed" and msg[1] == 2 and msg[2] == "ModelError" and "missing.tflite" in msg[3]

        parent.send_bytes(child.encode(("drop", 1)))
        parent.send_bytes(child.encode(("close",)))
        proc.join(30)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
        if slot is not None:
            slot.close()


# ---- a lane --------------------------------------------------------------------------

def test_a_lane_hosts_invokes_and_stops_with_its_last_model(spec) -> None:  # type: ignore[no-untyped-def]
    tensor = squat_tensor()
    lane = Lane("cpu", None, context(), LOAD_TIMEOUT_S)
    try:
        assert not lane.up
        lane.host(Hosted(1, spec, 1))  # starts the worker
        assert lane.up and set(lane.details) == {1}
        lane.host(Hosted(2, spec, 1))  # a second model in the same worker
        worker = lane.worker
        for _ in range(3):
            out = lane.invoke(2, tensor, 0.0)
        assert len(lane.times[2]) == 2  # the first invoke is not a sample
        np.testing.assert_array_equal(out[0], open_engine(MODEL, "cpu").invoke(tensor)[0].data)
        lane.unhost(1)
        assert lane.worker is worker and 1 not in lane.details
        lane.unhost(2)  # the last model: the worker stops
        assert not lane.up
    finally:
        lane.stop()


def test_a_lane_that_cannot_load_stays_down(spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    lane = Lane("cpu", None, context(), LOAD_TIMEOUT_S)
    try:
        with pytest.raises(ModelError):
            lane.host(Hosted(1, type(spec)(spec.manifest, broken), 1))
        assert not lane.up
    finally:
        lane.stop()


# ---- does a tensor prepared for one build fit another ------------------------------

def test_a_build_joins_only_when_it_takes_the_same_input(spec) -> None:  # type: ignore[no-untyped-def]
    """The check before a CPU twin (or the Edge TPU build coming back) joins an engine's
    routes: real builds' tensor details, the same model and a different one."""
    shared_path("models", "coral", "posenet_mobilenet_v1_075_481_641_quant.tflite")
    movenet = open_engine(MODEL, "cpu").io
    again = open_engine(MODEL, "cpu").io
    posenet = open_engine("posenet-mobilenet-v1-075-481x641", "cpu").io
    assert takes_input_of(again, [movenet]) and takes_input_of(movenet, [None, again])
    assert not takes_input_of(posenet, [movenet]) and not takes_input_of(movenet, [None, posenet])
    assert takes_input_of(None, [movenet]) and takes_input_of(posenet, [])  # not loaded yet
