"""Several people, top-down: a proposer finds them, a landmark model poses each one.

Per frame (``invoke``, in frame order):

1. **Temporal crops.** Each person tracked from the previous frame is cropped around
   their previous keypoints (box grown by ``crop_margin``, squared) and the landmark
   model (MoveNet Lightning) runs on the crop. A crop whose pose scores below
   ``min_pose_score`` lost its person.
2. **Proposals**, every ``proposal_interval`` frames, when nobody is tracked, or at once
   when a track was lost (a cut, someone left): the proposer (PoseNet 481x641, on the
   Edge TPU through its ``edgetpu_twin``) finds people in the whole frame; those not
   already tracked (OKS against a temporal pose above ``match_oks``, looser than
   ``nms_oks`` as PoseNet's keypoints are coarser) are cropped the same way, best first,
   up to ``max_people`` in all. A proposal crop whose pose scores below
   ``refine_below`` (the proposal cut the person off) is cropped once more around that
   pose; the better of the two survives the next step.
3. **Duplicates** are removed by OKS-based pose NMS (``nms_oks``); a pose keeps the
   track id of the tracked pose it absorbed, so ids are stable; a new person gets a new
   id. The pose score is the landmark model's (mean keypoint score).

``estimate`` (a still image) runs the proposals and the crops once, with no tracks in or
out. Costs per frame: one proposer invoke on proposal frames, one landmark invoke per
person (see ``benchmarks/bench_topdown.py``). Measured on coco17_dev (CPU): PoseNet
alone AP 0.489; PoseNet proposals + MoveNet crops 0.679 with a 1.4x margin (1.3x
0.627, 1.5x 0.616); adding the full-frame MoveNet pose as a proposal (``full_frame_proposal``)
costs an invoke and gave 0.664.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.estimators.base import BaseEstimator, EngineOpener, Estimate, Job, ModelEngine, elapsed_ms
from edgepose.estimators.crops import Box, person_box, person_boxes
from edgepose.estimators.nms import oks_matrix, pose_nms
from edgepose.estimators.runner import ModelRunner, settled
from edgepose.models.manifest import TopDownManifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopDownParams:
    """The ``[params]`` of a ``kind = "topdown"`` manifest (see the module docstring)."""

    proposal_interval: int = 5
    max_people: int = 6
    crop_margin: float = 1.4
    keypoint_threshold: float = 0.2
    nms_oks: float = 0.5
    match_oks: float = 0.3
    min_pose_score: float = 0.2
    refine_below: float = 0.3
    full_frame_proposal: bool = False

    @classmethod
    def from_dict(cls, params: dict[str, Any], origin: str = "topdown manifest") -> TopDownParams:
        """Checked values; a bad one is a ConfigError naming the manifest and the key."""
        known = {f.name: f for f in fields(cls)}
        for key, value in params.items():
            if key not in known:
                raise ConfigError(f"{origin}: [params] has no {key!r}; expected some of "
                                  f"{', '.join(known)}")
            rule = _RULES[key]
            if not rule[0](value):
                raise ConfigError(f"{origin}: [params] {key} = {value!r}; expected {rule[1]}")
        return cls(**params)


def _int_from_1(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _fraction(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0


_RULES = {
    "proposal_interval": (_int_from_1, "an integer >= 1 (frames between proposals)"),
    "max_people": (_int_from_1, "an integer >= 1"),
    "crop_margin": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                    and 1.0 <= v <= 3.0, "a number from 1.0 to 3.0"),
    "keypoint_threshold": (_fraction, "a score from 0 to below 1"),
    "nms_oks": (lambda v: _fraction(v) and v > 0, "an OKS above 0 and below 1"),
    "match_oks": (lambda v: _fraction(v) and v > 0, "an OKS above 0 and below 1"),
    "min_pose_score": (_fraction, "a score from 0 to below 1"),
    "refine_below": (lambda v: _fraction(v) or v == 1, "a score from 0 to 1"),
    "full_frame_proposal": (lambda v: isinstance(v, bool), "true or false"),
}


class Proposer(Protocol):
    """Finds the people a top-down pipeline crops: PoseNet's poses here; a person
    detector (BlazePose's) would be another. ``prepare`` makes its input from a frame
    (on the capture thread when it can); ``propose`` returns boxes of the people not
    among ``tracked`` (this frame's temporal poses), best first."""

    def prepare(self, image: npt.NDArray[np.uint8]) -> tuple[Any, Transform, float]: ...

    def propose(self, job: Job, prepared: tuple[Any, Transform] | None,
                tracked: list[Poses]) -> list[Box]: ...


class PoseProposer:
    """People from a multi-pose model's poses (PoseNet): a pose matching a tracked one
    (OKS above ``match_oks``) is that person again; each other pose's keypoint box,
    grown by ``crop_margin`` and squared, is a crop."""

    def __init__(self, engine: ModelEngine, params: TopDownParams) -> None:
        self.runner = ModelRunner(engine, "proposer")
        self.params = params

    def prepare(self, image: npt.NDArray[np.uint8]) -> tuple[Any, Transform, float]:
        return self.runner.prepare(image)

    def propose(self, job: Job, prepared: tuple[Any, Transform] | None,
                tracked: list[Poses]) -> list[Box]:
        p = self.params
        if prepared is None:
            tensor, transform, ms = self.prepare(job.image)
            job.add_time("preprocess_ms", ms)
        else:
            tensor, transform = prepared
        found = self.runner.run(job, tensor, transform)
        found = found[np.argsort(-found.pose_scores, kind="stable")]
        if tracked and len(found):
            n = len(tracked)
            sim = oks_matrix(Poses.concat([*tracked, found]), p.keypoint_threshold)
            sim = np.maximum(sim[n:, :n], sim[:n, n:].T)  # proposals x tracked, either way round
            found = found[sim.max(axis=1) <= p.match_oks]
        return person_boxes(found, job.image.shape[:2], p.crop_margin, p.keypoint_threshold)


@dataclass
class _Plan:
    """``Job.state``: a still image or a video frame, and the proposer's input if
    ``prepare`` made it."""

    still: bool
    proposer_input: tuple[Any, Transform] | None = None


@dataclass
class _Track:
    id: int
    box: Box  # where to crop this person in the next frame


class TopDownEstimator(BaseEstimator):
    """Proposer + landmark model (see the module docstring). ``proposals`` turns the
    proposer model's output into crop boxes (default: ``PoseProposer``, for a
    multi-pose model)."""

    def __init__(self, proposer: ModelEngine, landmark: ModelEngine,
                 params: TopDownParams | None = None, name: str = "topdown",
                 proposals: Proposer | None = None) -> None:
        self.params = params or TopDownParams()
        self._name = name
        self.proposer_engine, self.landmark_engine = proposer, landmark
        self._proposer = proposals or PoseProposer(proposer, self.params)
        self._landmark = ModelRunner(landmark, "landmark")
        self._tracks: list[_Track] = []
        self._countdown = 0  # frames until proposals are due
        self._next_id = 0

    @classmethod
    def open(cls, manifest: TopDownManifest, device: str, opener: EngineOpener,
             **options: Any) -> TopDownEstimator:
        """Open the manifest's two models through ``opener`` and check they fit."""
        origin = str(manifest.source or manifest.name)
        params = TopDownParams.from_dict(manifest.params, origin)
        proposer = opener(manifest.proposer, device, **options)
        try:
            landmark = opener(manifest.landmark, device, **options)
        except BaseException:
            proposer.close()
            raise
        try:
            if not proposer.multi_pose:
                raise ConfigError(f"{origin}: proposer {manifest.proposer} finds one pose per "
                                  "frame; a proposer must be a multi-pose model (e.g. PoseNet)")
            if landmark.multi_pose:
                raise ConfigError(f"{origin}: landmark {manifest.landmark} is a multi-pose "
                                  "model; the landmark model must be single-pose (e.g. MoveNet)")
            if landmark.schema != manifest.schema:
                raise ConfigError(f"{origin}: landmark {manifest.landmark} gives {landmark.schema} "
                                  f"keypoints but the manifest says schema = {manifest.schema!r}")
        except BaseException:
            proposer.close()
            landmark.close()
            raise
        _log_co_compilation(proposer, landmark)
        return cls(proposer, landmark, params, manifest.name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def device(self) -> str:
        devices = [self.proposer_engine.device, self.landmark_engine.device]
        return devices[0] if devices[0] == devices[1] else "+".join(devices)

    @property
    def schema(self) -> str:
        return self.landmark_engine.schema

    @property
    def multi_pose(self) -> bool:
        return True

    # ---- the stages -----------------------------------------------------------------

    def prepare(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Job:
        """The proposer's input when proposals look due (a guess from this thread; the
        inference stage makes it itself when the guess was wrong)."""
        job = Job(image, timestamp, timings={"preprocess_ms": 0.0}, state=_Plan(False))
        if not self._tracks or self._countdown <= 1:
            tensor, transform, ms = self._proposer.prepare(image)
            job.state.proposer_input = (tensor, transform)
            job.add_time("preprocess_ms", ms)
        return job

    def invoke(self, job: Job) -> Job:
        plan = job.state if isinstance(job.state, _Plan) else _Plan(True)
        p = self.params
        tracks = [] if plan.still else self._tracks
        cands = self._landmark.on_boxes(job, [t.box for t in tracks])
        ids = [t.id for t in tracks]
        alive = [c for c in cands if c.pose_scores[0] >= p.min_pose_score]
        if not plan.still:
            self._countdown -= 1
        propose = plan.still or not alive or len(alive) < len(cands) or self._countdown <= 0
        if propose:
            new = self._new_people(job, plan, alive, p.max_people - len(alive))
            if p.full_frame_proposal:
                new.append(self._landmark.on_frame(job))
            cands += new
            ids += [-1] * len(new)
            if not plan.still:
                self._countdown = p.proposal_interval
        t0 = time.perf_counter()
        poses = self._merge(job, cands, ids, plan.still)
        job.add_time("decode_ms", elapsed_ms(t0))
        job.outputs = poses
        job.device = self.device
        return job

    def finish(self, job: Job) -> Estimate:
        """The poses were settled in ``invoke`` (the next frame's crops need them);
        nothing here touches a model."""
        return settled(job, self.schema, self.device)

    def estimate(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Estimate:
        """A still image: proposals and crops once, nothing kept for the next call."""
        job = self.prepare(image, timestamp)
        job.state = _Plan(True, job.state.proposer_input if isinstance(job.state, _Plan) else None)
        return self.finish(self.invoke(job))

    # ---- the steps ------------------------------------------------------------------

    def _new_people(self, job: Job, plan: _Plan, tracked: list[Poses], room: int) -> list[Poses]:
        """Landmark poses of the people the proposer finds that are not tracked yet; a
        weak one (cut off by its proposal box) is cropped once more around itself."""
        p = self.params
        if room <= 0:
            return []
        boxes = self._proposer.propose(job, plan.proposer_input, tracked)[:room]
        poses = self._landmark.on_boxes(job, boxes)
        size = job.image.shape[:2]
        weak = [q for q in poses if q.pose_scores[0] < p.refine_below]
        again = [b for q in weak for b in person_boxes(q, size, p.crop_margin, p.keypoint_threshold)]
        return poses + self._landmark.on_boxes(job, again)  # duplicates go in the merge

    def _merge(self, job: Job, cands: list[Poses], ids: list[int], still: bool) -> Poses:
        """Duplicates removed, weak poses dropped, track ids given, tracks updated."""
        p = self.params
        if not cands:
            if not still:
                self._tracks = []
            return Poses.empty(self.schema)
        allp = Poses.concat(cands)
        keep, groups = pose_nms(allp, p.nms_oks, p.keypoint_threshold)
        chosen = [(k, g) for k, g in zip(keep, groups)
                  if allp.pose_scores[k] >= p.min_pose_score][:p.max_people]
        poses = allp[[k for k, _ in chosen]]
        if still:
            return poses
        track_ids = []
        for _, group in chosen:
            known = [ids[i] for i in group if ids[i] >= 0]
            if known:
                track_ids.append(min(known))
            else:
                track_ids.append(self._next_id)
                self._next_id += 1
        poses = Poses(poses.xy, poses.scores, poses.pose_scores, poses.schema,
                      np.asarray(track_ids, np.int64))
        size = job.image.shape[:2]
        boxes = [person_box(poses.xy[i], poses.scores[i], size, p.crop_margin, p.keypoint_threshold,
                            float(poses.pose_scores[i])) for i in range(len(poses))]
        self._tracks = [_Track(t, b) for t, b in zip(track_ids, boxes) if b is not None]
        return poses

    def reset(self) -> None:
        """Forget the tracked people (a new video)."""
        self._tracks, self._countdown = [], 0

    def close(self) -> None:
        self.proposer_engine.close()
        self.landmark_engine.close()


def _log_co_compilation(*engines: ModelEngine) -> None:
    """One log line when two Edge TPU models loaded together were compiled separately:
    each switch between them then reloads parameters through the 8 MB cache."""
    from edgepose.models.tflite_info import co_compilation_warning

    if not all(e.device == "edgetpu" for e in engines):
        return
    paths = [p for e in engines if (p := getattr(getattr(e, "spec", None), "path", None))]
    if len(paths) == len(engines):
        warning = co_compilation_warning(paths)
        if warning:
            log.warning("%s", warning)
