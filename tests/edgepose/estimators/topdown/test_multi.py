"""The top-down estimator on real images and frames: proposals, crops, duplicates,
track ids, and what its manifest may say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, ModelError
from edgepose.estimators.base import Estimate, ModelEngine, SingleModelEstimator
from edgepose.estimators.factory import open_estimator
from edgepose.estimators.topdown import TopDownEstimator, TopDownParams
from edgepose.inference.engine import open_engine
from edgepose.models.manifest import any_manifest_from_dict, load_manifest
from tests.conftest import REPO, load_rgb, shared_path

PROPOSER = "posenet-mobilenet-v1-075-481x641"


class RecordingOpener:
    """Opens real engines in this process, as ``open_estimator``'s default does, and
    keeps the calls: every engine must come through the opener."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, model: str, device: str, **options: Any) -> ModelEngine:
        self.calls.append((model, device, options))
        return open_engine(model, device, **options)


@pytest.fixture
def topdown() -> TopDownEstimator:
    est = open_estimator("movenet-multipose-fast", "cpu")
    assert isinstance(est, TopDownEstimator)
    yield est
    est.close()


def _run(e: TopDownEstimator, image: np.ndarray, t: float = 0.0) -> Estimate:
    return e.finish(e.invoke(e.prepare(image, t)))


def test_every_engine_comes_through_the_opener() -> None:
    opener = RecordingOpener()
    est = open_estimator("movenet-multipose-fast", "cpu", opener=opener, num_threads=1)
    est.close()
    assert opener.calls == [(PROPOSER, "cpu", {"num_threads": 1}),
                            ("movenet-lightning", "cpu", {"num_threads": 1})]
    assert (est.name, est.device, est.schema, est.multi_pose) == ("movenet-multipose-fast", "cpu", "coco17", True)


def test_the_couple_gives_two_poses_from_one_proposal_and_two_crops(topdown: TopDownEstimator) -> None:
    image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
    est = topdown.estimate(image)
    assert len(est.poses) == 2 and est.poses.track_ids is None  # a still image: no tracks
    assert est.invokes == 3 and est.timings["proposer_invoke_ms"] > 0
    assert est.timings["invoke_ms"] == pytest.approx(
        est.timings["proposer_invoke_ms"] + est.timings["landmark_invoke_ms"])
    posenet = SingleModelEstimator(open_engine(PROPOSER, "cpu")).estimate(image).poses.above(0.2)
    assert len(posenet) == 2
    # each MoveNet pose is one of PoseNet's people, placed more confidently
    centres = [np.median(p.xy[0], axis=0) for p in (est.poses[0], est.poses[1])]
    ref = [np.median(posenet.xy[i], axis=0) for i in range(2)]
    assert sorted(int(np.argmin([np.linalg.norm(c - r) for r in ref])) for c in centres) == [0, 1]
    assert est.poses.pose_scores.min() > 0.5


def test_video_frames_follow_people_between_proposals(topdown: TopDownEstimator,
                                                      pose2sim_frames: list[np.ndarray]) -> None:
    """Proposals every 5 frames; in between one MoveNet crop per tracked person (and
    once in a while one more: the previous crop again when a moved crop posed worse);
    ids kept."""
    runs = [_run(topdown, f, i / 60) for i, f in enumerate(pose2sim_frames[:11])]
    proposed = [i for i, r in enumerate(runs) if "proposer_invoke_ms" in r.timings]
    assert proposed == [0, 5, 10]
    people = len(runs[0].poses)
    assert people == 2  # the athlete and the person standing in the background
    between = [r.invokes for i, r in enumerate(runs) if i not in proposed]
    assert all(people <= n <= 2 * people for n in between) and np.median(between) == people
    assert all(sorted(r.poses.track_ids.tolist()) == [0, 1] for r in runs)
    blank = np.zeros_like(pose2sim_frames[0])
    lost = _run(topdown, blank)
    assert "proposer_invoke_ms" in lost.timings and len(lost.poses) == 0  # looked at once
    back = _run(topdown, pose2sim_frames[11])
    assert len(back.poses) == 2 and set(back.poses.track_ids.tolist()).isdisjoint({0, 1})


def test_estimate_leaves_the_tracks_alone(topdown: TopDownEstimator,
                                          pose2sim_frames: list[np.ndarray]) -> None:
    _run(topdown, pose2sim_frames[0])
    topdown.estimate(load_rgb(shared_path("images", "posenet_test_couple.jpg")))
    nxt = _run(topdown, pose2sim_frames[1])
    assert "proposer_invoke_ms" not in nxt.timings and sorted(nxt.poses.track_ids.tolist()) == [0, 1]


@pytest.mark.parametrize("params, match", [
    ({"proposal_interval": 0}, "proposal_interval = 0; expected an integer >= 1"),
    ({"max_people": 2.5}, "max_people = 2.5"),
    ({"crop_margin": 0.8}, "crop_margin = 0.8; expected a number from 1.0 to 3.0"),
    ({"nms_oks": 0}, "nms_oks = 0"),
    ({"full_frame_proposal": "yes"}, "true or false"),
    ({"crop_margn": 1.4}, "has no 'crop_margn'; expected some of proposal_interval"),
])
def test_bad_params_name_the_manifest_and_key(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        TopDownParams.from_dict(params, "my.toml")
    assert str(info.value).startswith("my.toml: [params]")


@pytest.mark.parametrize("data, match", [
    ({"name": "x", "proposer": PROPOSER}, "missing required field.*landmark"),
    ({"name": "x", "proposer": PROPOSER, "landmark": ""}, "landmark must be a non-empty string"),
    ({"name": "x", "proposer": PROPOSER, "landmark": "m", "file": "a.tflite"}, "unknown key.*file"),
    ({"name": "x", "proposer": PROPOSER, "landmark": "m", "schema": "body25"}, "schema = 'body25'"),
    ({"name": "x", "proposer": PROPOSER, "landmark": "m", "params": 3}, r"\[params\] must be a table"),
])
def test_bad_topdown_manifests(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelError, match=match):
        any_manifest_from_dict({"kind": "topdown", **data}, "x.toml")


def test_a_pipeline_manifest_is_no_sidecar() -> None:
    with pytest.raises(ModelError, match="topdown pipeline manifest, not a model's"):
        load_manifest(REPO / "models" / "movenet-multipose.toml")


@pytest.mark.parametrize("proposer, landmark, match", [
    ("movenet-lightning", "movenet-lightning", "proposer movenet-lightning finds one pose"),
    (PROPOSER, PROPOSER, "landmark model must be single-pose"),
])
def test_the_two_models_must_fit_their_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             proposer: str, landmark: str, match: str) -> None:
    (tmp_path / "mine.toml").write_text(
        f'name = "mine"\nkind = "topdown"\nproposer = "{proposer}"\nlandmark = "{landmark}"\n')
    monkeypatch.setenv("EDGEPOSE_MANIFEST_PATH", str(tmp_path))
    opener = RecordingOpener()
    with pytest.raises(ConfigError, match=match) as info:
        open_estimator("mine", "cpu", opener=opener)
    assert "mine.toml" in str(info.value) and len(opener.calls) == 2


def test_file_options_are_refused_for_a_pipeline() -> None:
    with pytest.raises(ConfigError, match="--decoder describes one model file"):
        open_estimator("movenet-multipose-fast", "cpu", decoder="movenet")


class EdgeTpuLoaded:
    """What an Edge TPU engine looks like to the estimator (no accelerator here): the
    real CPU engine, reporting device "edgetpu" and the Edge TPU file it would run."""

    def __init__(self, engine: Any, edgetpu_file: Path) -> None:
        from edgepose.models.registry import ModelSpec

        self._engine = engine
        self.spec = ModelSpec(engine.spec.manifest, edgetpu_file)
        self.device = "edgetpu"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def test_a_pair_not_co_compiled_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    coral = ("models", "coral")  # Coral's Edge TPU builds, each compiled on its own
    files = {PROPOSER: shared_path(*coral, "posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu.tflite"),
             "movenet-lightning": shared_path(*coral, "movenet_single_pose_lightning_ptq_edgetpu.tflite")}

    def opener(model: str, device: str, **options: Any) -> Any:
        return EdgeTpuLoaded(open_engine(model, "cpu", **options), files[model])

    with caplog.at_level("WARNING", logger="edgepose.estimators.topdown"):
        est = open_estimator("movenet-multipose-fast", "auto", opener=opener)
    est.close()
    assert est.device == "edgetpu"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "compiled separately" in lines[0]


def test_the_pipeline_runs_its_two_models_in_one_supervised_worker() -> None:
    """edgepose-run's way: both models in one worker process (which owns the Edge TPU on
    a Pi), the poses those of the in-process models."""
    from edgepose.inference.worker import Supervisor

    image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
    sup = Supervisor(num_threads=1)
    try:
        est = open_estimator("movenet-multipose-fast", "cpu", opener=sup.open_engine)
        assert isinstance(est, TopDownEstimator)
        assert est.proposer_engine.pids == est.landmark_engine.pids  # one process for both
        got = est.estimate(image)
        est.close()
    finally:
        sup.close()
    ref = open_estimator("movenet-multipose-fast", "cpu", num_threads=1).estimate(image)
    assert got.invokes == ref.invokes == 3 and len(got.poses) == 2
    np.testing.assert_array_equal(got.poses.xy, ref.poses.xy)


def _pose(scores: list[float], pose_score: float) -> Any:
    """One coco17 pose: keypoint i at (100 + 20 i, 80 + 15 i), scored as given (0 after)."""
    from edgepose.core.pose import Poses

    k = np.arange(17, dtype=np.float32)
    xy = np.stack([100 + 20 * k, 80 + 15 * k], -1)[None]
    s = np.zeros((1, 17), np.float32)
    s[0, :len(scores)] = scores
    return Poses(xy, s, np.array([pose_score], np.float32))


def test_the_next_crop_box_is_the_pose_box_unless_the_crop_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a tracked person is cropped next (``_next_box``): around the keypoints that
    score at least the pipeline's keypoint_threshold (not person_box's default, nor the
    pose score); a held crop, or one the new box barely moves (IoU >= steady_iou), stays;
    no box (too few keypoints) is no box, held or not."""
    from edgepose.estimators.crops import person_box
    from edgepose.estimators.topdown import _Crop

    est = open_estimator("movenet-multipose-fast", "cpu")
    assert isinstance(est, TopDownEstimator)
    try:
        est.params = TopDownParams.from_dict({"keypoint_threshold": 0.25, "crop_margin": 1.2}, "test")
        size = (720, 1280)
        # four tight keypoints at 0.9, two farther at 0.3 (>= 0.25, < the pose score 0.6),
        # the farthest at 0.22 (counted from person_box's default 0.2 only)
        pose = _pose([0.9, 0.9, 0.9, 0.9, 0, 0, 0.3, 0, 0, 0, 0, 0, 0.3, 0, 0, 0, 0.22], 0.6)
        want = person_box(pose.xy[0], pose.scores[0], size, 1.2, 0.25)
        assert want is not None
        for other in (0.2, 0.6):  # person_box's default threshold, the pose score: other boxes
            other_box = person_box(pose.xy[0], pose.scores[0], size, 1.2, other)
            assert other_box is not None and other_box.as_array().tolist() != want.as_array().tolist()
        got = est._next_box(pose, None, size)  # a pose with no crop (the whole frame's)
        assert got is not None and got.as_array().tolist() == want.as_array().tolist()
        far = _Crop(want.scaled(0.5))
        assert est._next_box(pose, far, size) == got  # moved: the new box
        assert est._next_box(pose, _Crop(far.box, held=True), size) == far.box  # held
        near = _Crop(want.scaled(1.02))
        assert want.iou(near.box) >= est.params.steady_iou
        assert est._next_box(pose, near, size) == near.box  # barely moved: stays
        lost = _pose([0.9, 0.1], 0.5)  # one keypoint says where, not how big: no box
        assert est._next_box(lost, _Crop(far.box, held=True), size) is None
        assert est._next_box(lost, None, size) is None
    finally:
        est.close()
