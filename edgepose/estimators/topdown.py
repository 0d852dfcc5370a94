"""Several people, top-down: a proposer finds them, a landmark model poses each one.

Per frame (``invoke``, in frame order):

1. **Temporal crops.** Each person tracked from the previous frame is cropped around
   their previous keypoints (box grown by ``crop_margin``, squared) and the landmark
   model (MoveNet Thunder in the default; Lightning in ``movenet-multipose-fast``) runs
   on the crop. A crop whose pose scores below
   ``min_pose_score`` lost its person. The crop is **held** while a new one would barely
   differ (IoU >= ``steady_iou``), so identical frames give identical poses; a crop that
   moved and posed ``steady_drop`` worse than the previous frame is run again where it
   was, the better pose kept and that crop held (``_follow``): on a still scene a
   temporal crop never drifts below where it started.
2. **Proposals**, every ``proposal_interval`` frames, when nobody is tracked, or at once
   when a track was lost (a cut, someone left): the proposer (PoseNet 481x641, on the
   Edge TPU through its ``edgetpu_twin``) finds people in the whole frame; those not
   already tracked (OKS against a temporal pose above ``match_oks``, looser than
   ``nms_oks`` as PoseNet's keypoints are coarser) are cropped the same way, best first,
   up to ``max_people`` in all. A landmark pose the proposer's pose of that person
   disagrees with scores lower (x ``1 - agreement_weight + agreement_weight * OKS``), so
   a false pose ranks below the real people. A proposal crop whose pose scores below
   ``refine_below`` (the proposal cut the person off) is cropped once more around that
   pose; the better of the two survives the next step. The proposer's own poses can
   enter too (``proposer_weight`` > 0; off by default: it cost coco17_dev AP).
3. **Nobody found** (no pose scores ``min_pose_score`` and nobody tracked):
   ``full_frame_fallback`` runs the landmark model on the whole frame and once more on
   a crop around what it saw (an upside-down or unusual person PoseNet cannot propose).
4. **Duplicates** are removed by OKS-based pose NMS (``nms_oks``); a pose keeps the
   track id of the tracked pose it absorbed, so ids are stable; a new person gets a new
   id. The pose score is the landmark model's (mean keypoint score, agreement-weighted
   for proposal crops).

``estimate`` (a still image) runs the proposals and the crops once, with no tracks in or
out. Costs per frame: one proposer invoke on proposal frames, one landmark invoke per
person, now and then one more when a moved crop is run again (see
``benchmarks/bench_topdown.py``, ``benchmarks/bench_accuracy.py``).

A manifest's ``[fallback]`` names the landmark model opened instead, with its own params
over the pipeline's, when the landmark cannot be downloaded (``FetchError``): the default
(Thunder) then runs Lightning as ``movenet-multipose-fast`` does, with one warning line.
Such a landmark is fetched with a short timeout and a failure is remembered for an hour
(``edgepose.models.recall``), so an offline start does not wait on the network each time.

Tuned on coco17_dev (CPU, ``edgepose-tools evaluate``; README "Accuracy on people we did
not tune on" has the tables). With Lightning: PoseNet alone AP 0.489; PoseNet proposals +
MoveNet crops 0.679 with a 1.4x margin (1.3x 0.627, 1.5x 0.616); adding the full-frame
MoveNet pose as a proposal (``full_frame_proposal``) costs an invoke and gave 0.664;
``agreement_weight`` 0 / 0.3 / 0.5 / 1.0: 0.679 / 0.679 / 0.679 / 0.672 (0.3: no extra
invoke); ``proposer_weight`` 0.5: 0.673 with agreement on. ``steady_iou`` (0.7-0.9 alike
on coco17_dev's held stills) is 0.8 by the held-still rule on both sets. With Thunder (an
int8 stand-in built by the tools): margin x refine_below grid, 0.708 at 1.25 / 0.4 (0.692
at Lightning's 1.4 / 0.3). Checked on limbs12_dev: Lightning 0.381, Thunder 0.533.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ConfigError, FetchError
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.estimators.base import BaseEstimator, EngineOpener, Estimate, Job, ModelEngine, elapsed_ms
from edgepose.estimators.crops import Box, person_box, person_boxes
from edgepose.estimators.nms import pose_nms
from edgepose.estimators.params import TopDownParams
from edgepose.estimators.proposers import PoseProposer, Proposal, Proposer
from edgepose.estimators.runner import ModelRunner, settled
from edgepose.estimators.scoring import agreement_scored, rescored
from edgepose.models.manifest import TopDownManifest

__all__ = ["PoseProposer", "Proposal", "Proposer", "TopDownEstimator", "TopDownParams"]

log = logging.getLogger(__name__)


@dataclass
class _Plan:
    """``Job.state``: a still image or a video frame, and the proposer's input if
    ``prepare`` made it."""

    still: bool
    proposer_input: tuple[Any, Transform] | None = None


@dataclass(frozen=True)
class _Crop:
    box: Box  # the crop a tracked person's pose came from
    held: bool = False


@dataclass
class _Track:
    id: int
    box: Box  # where to crop this person in the next frame
    source: Box | None = None  # the crop that gave this frame's pose (None: a proposal's)
    score: float = 0.0  # that pose's own score (``_raw``)
    held: bool = False  # the crop stays put until the pose gets worse (see _follow)


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
        fallback = manifest.fallback  # checked before anything loads, as the main params are
        fallback_params = TopDownParams.from_dict({**manifest.params, **fallback.get("params", {})},
                                                  origin + " [fallback]") if fallback else None
        from edgepose.models.recall import fetch_or_recall
        from edgepose.models.registry import is_model_path

        proposer = opener(manifest.proposer, device, **options)  # a bad device fails here first
        landmark_name = manifest.landmark
        try:
            if fallback_params is not None and not is_model_path(landmark_name):
                try:  # a short timeout, and a failure remembered for a while (models/recall.py)
                    fetch_or_recall(landmark_name)
                except FetchError as err:
                    landmark_name, params = fallback["landmark"], fallback_params
                    log.warning("%s: %s; running %s instead (less precise; `edgepose models fetch %s` "
                                "once online)", manifest.name, err, landmark_name, manifest.landmark)
            landmark = opener(landmark_name, device, **options)
        except BaseException:
            proposer.close()
            raise
        try:
            if not proposer.multi_pose:
                raise ConfigError(f"{origin}: proposer {manifest.proposer} finds one pose per "
                                  "frame; a proposer must be a multi-pose model (e.g. PoseNet)")
            if landmark.multi_pose:
                raise ConfigError(f"{origin}: landmark {landmark_name} is a multi-pose "
                                  "model; the landmark model must be single-pose (e.g. MoveNet)")
            if landmark.schema != manifest.schema:
                raise ConfigError(f"{origin}: landmark {landmark_name} gives {landmark.schema} "
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
        cands, crops = self._follow(job, tracks)
        ids = [t.id for t in tracks]
        alive = [c for c in cands if c.pose_scores[0] >= p.min_pose_score]
        if not plan.still:
            self._countdown -= 1
        propose = plan.still or not alive or len(alive) < len(cands) or self._countdown <= 0
        if propose:
            new = self._new_people(job, plan, alive, p.max_people - len(alive))
            if p.full_frame_proposal:
                new.append((self._landmark.on_frame(job), None))
            cands += [q for q, _ in new]
            ids += [-1] * len(new)
            crops += [c for _, c in new]
            if not plan.still:
                self._countdown = p.proposal_interval
        t0 = time.perf_counter()
        poses = self._merge(job, cands, ids, crops, plan.still)
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

    def _new_people(self, job: Job, plan: _Plan, tracked: list[Poses],
                    room: int) -> list[tuple[Poses, _Crop | None]]:
        """Landmark poses of the people the proposer finds that are not tracked yet, each
        with its crop; a weak one (cut off by its proposal box) is cropped once more
        around itself. The proposer's own poses are candidates too (weighted by
        ``proposer_weight``), and a landmark pose the proposer's pose disagrees with
        scores lower (``agreement_weight``). When nobody is found at all, the landmark
        model looks at the whole frame."""
        p = self.params
        if room <= 0:
            return []
        proposals = self._proposer.propose(job, plan.proposer_input, tracked)[:room]
        boxes = [q.box for q in proposals]
        poses = self._landmark.on_boxes(job, boxes)
        if p.agreement_weight > 0:
            poses = [agreement_scored(m, q.pose, p.agreement_weight, p.keypoint_threshold)
                     if q.pose is not None else m for m, q in zip(poses, proposals)]
        size = job.image.shape[:2]
        weak = [q for q in poses if q.pose_scores[0] < p.refine_below]
        again = [b for q in weak for b in person_boxes(q, size, p.crop_margin, p.keypoint_threshold)]
        poses += self._landmark.on_boxes(job, again)  # duplicates go in the merge
        out: list[tuple[Poses, _Crop | None]] = [(q, _Crop(b)) for q, b in zip(poses, boxes + again)]
        if p.proposer_weight > 0:
            out += [(rescored(q.pose, p.proposer_weight), None) for q in proposals if q.pose is not None]
        if p.full_frame_fallback and not tracked and not any(
                q.pose_scores[0] >= p.min_pose_score for q, _ in out):
            out += self._whole_frame(job)
        return out

    def _whole_frame(self, job: Job) -> list[tuple[Poses, _Crop | None]]:
        """Nobody proposed: the landmark model on the whole frame, then on a crop around
        what it found (as the single-person estimator does on a still)."""
        p = self.params
        first = self._landmark.on_frame(job)
        boxes = person_boxes(first, job.image.shape[:2], p.crop_margin, p.keypoint_threshold)[:1]
        return [(first, None), *((q, _Crop(b)) for q, b in zip(self._landmark.on_boxes(job, boxes), boxes))]

    def _follow(self, job: Job, tracks: list[_Track]) -> tuple[list[Poses], list[_Crop | None]]:
        """Each tracked person's pose on the crop around their previous pose. Where that
        crop moved and the pose scores ``steady_drop`` below the previous frame's, the
        previous crop is run again and the better pose kept (the crop is then held
        there): on a still scene a temporal crop never drifts below where it started."""
        p = self.params
        poses = self._landmark.on_boxes(job, [t.box for t in tracks])
        crops: list[_Crop | None] = [_Crop(t.box, t.held) for t in tracks]
        back = [(i, src) for i, t in enumerate(tracks) if (src := t.source) is not None
                and src != t.box and _raw(poses[i]) < t.score - p.steady_drop]
        for (i, src), q in zip(back, self._landmark.on_boxes(job, [src for _, src in back])):
            if _raw(q) > _raw(poses[i]):
                poses[i], crops[i] = q, _Crop(src, True)
        moved_back = {i for i, _ in back}
        for i, t in enumerate(tracks):
            c = crops[i]
            if c is not None and c.held and i not in moved_back and _raw(poses[i]) < t.score - p.steady_drop:
                crops[i] = _Crop(c.box, False)  # the person changed: follow them again
        return poses, crops

    def _next_box(self, pose: Poses, crop: _Crop | None, size: tuple[int, int]) -> Box | None:
        """Where to crop this person next: around their pose, unless the crop that gave
        it is held or the new one would barely differ (``steady_iou``): identical frames
        then give identical poses."""
        p = self.params
        box = person_box(pose.xy[0], pose.scores[0], size, p.crop_margin, p.keypoint_threshold,
                         float(pose.pose_scores[0]))
        if crop is None or box is None:
            return box
        if crop.held or box.iou(crop.box) >= p.steady_iou:
            return crop.box
        return box

    def _merge(self, job: Job, cands: list[Poses], ids: list[int], crops: list[_Crop | None],
               still: bool) -> Poses:
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
        tracks = []
        for i, (k, _) in enumerate(chosen):
            crop = crops[k]
            box = self._next_box(poses[i:i + 1], crop, size)
            if box is not None:
                tracks.append(_Track(track_ids[i], box, crop.box if crop else None,
                                     _raw(poses[i:i + 1]), bool(crop and crop.held and box == crop.box)))
        self._tracks = tracks
        return poses

    def reset(self) -> None:
        """Forget the tracked people (a new video)."""
        self._tracks, self._countdown = [], 0

    def close(self) -> None:
        self.proposer_engine.close()
        self.landmark_engine.close()


def _raw(pose: Poses) -> float:
    """A landmark pose's own score (mean keypoint score), before any reweighting: what
    two crops of one person are compared by."""
    return float(pose.scores[0].mean())


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
