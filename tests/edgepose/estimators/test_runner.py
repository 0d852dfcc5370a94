"""``ModelRunner`` (one engine in a pipeline, costs booked on the job) and the proposer's
schema bridge (a COCO-17 proposer's people compared with an MPII-16 landmark model's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgepose.core.pose import Poses
from edgepose.core.schemas import MPII_TO_COCO
from edgepose.estimators.base import Job
from edgepose.estimators.proposers import _in_schema
from edgepose.estimators.runner import ModelRunner
from edgepose.inference.engine import open_engine
from tests.conftest import load_rgb, shared_path


class CountingEngine:
    """A real engine whose preprocess calls are counted."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.preprocessed = engine, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def preprocess(self, image: np.ndarray) -> Any:
        self.preprocessed += 1
        return self.engine.preprocess(image)


@pytest.fixture
def runner() -> ModelRunner:
    engine = open_engine("movenet-lightning", "cpu")
    yield ModelRunner(CountingEngine(engine), "landmark")
    engine.close()


def test_on_frame_makes_the_input_once_and_books_its_time(runner: ModelRunner) -> None:
    image = load_rgb(shared_path("images", "coral_squat.bmp"))
    job = Job(image)
    first = runner.on_frame(job)
    assert runner.engine.preprocessed == 1 and job.tensor is not None and job.transform is not None
    assert set(job.timings) == {"preprocess_ms", "invoke_ms", "landmark_invoke_ms", "decode_ms"}
    assert job.invokes == 1
    spent = job.timings["preprocess_ms"]
    again = runner.on_frame(job)  # the input prepare made (here: the first call) is reused
    assert runner.engine.preprocessed == 1 and job.timings["preprocess_ms"] == spent and job.invokes == 2
    np.testing.assert_array_equal(first.xy, again.xy)


def test_on_frame_prepares_when_only_half_the_input_is_there(runner: ModelRunner) -> None:
    image = load_rgb(shared_path("images", "coral_squat.bmp"))
    tensor, transform, _ = runner.prepare(image)
    for job in (Job(image, tensor=tensor), Job(image, transform=transform)):
        before = runner.engine.preprocessed
        runner.on_frame(job)
        assert runner.engine.preprocessed == before + 1 and "preprocess_ms" in job.timings


def _coco(n: int = 2) -> Poses:
    rng = np.random.default_rng(3)
    return Poses(rng.uniform(0, 100, (n, 17, 2)).astype(np.float32),
                 rng.uniform(0.1, 1, (n, 17)).astype(np.float32),
                 np.array([0.9, 0.4][:n], np.float32), "coco17", np.array([7, 8][:n], np.int64))


def test_in_schema_keeps_the_shared_limb_joints_both_ways() -> None:
    coco = _coco()
    assert _in_schema(coco, "coco17") is coco
    mpii = _in_schema(coco, "mpii16")
    assert (mpii.schema, mpii.xy.shape, mpii.scores.shape) == ("mpii16", (2, 16, 2), (2, 16))
    assert mpii.xy.dtype == np.float32 and mpii.scores.dtype == np.float32
    for m, c in MPII_TO_COCO.items():
        np.testing.assert_array_equal(mpii.xy[:, m], coco.xy[:, c])
        np.testing.assert_array_equal(mpii.scores[:, m], coco.scores[:, c])
    unmapped = sorted(set(range(16)) - set(MPII_TO_COCO))
    assert unmapped and not mpii.scores[:, unmapped].any() and not mpii.xy[:, unmapped].any()
    np.testing.assert_array_equal(mpii.pose_scores, coco.pose_scores)
    np.testing.assert_array_equal(mpii.track_ids, coco.track_ids)
    back = _in_schema(mpii, "coco17")
    assert back.schema == "coco17" and back.xy.shape == (2, 17, 2)
    limbs = sorted(MPII_TO_COCO.values())
    np.testing.assert_array_equal(back.xy[:, limbs], coco.xy[:, limbs])
    np.testing.assert_array_equal(back.scores[:, limbs], coco.scores[:, limbs])
    face = sorted(set(range(17)) - set(limbs))
    assert not back.scores[:, face].any()
