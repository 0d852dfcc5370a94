"""One person, seen closer: a single-pose model on a square crop around them.

A single-pose model given the whole frame sees a small person at low resolution; given
a square crop around that person it places the keypoints better (coco17_dev, one person
per image, MoveNet Lightning: mean OKS 0.838 on the full frame, 0.892 with a second pass
on the crop). The crop is TF's MoveNet tutorial's (``edgepose.estimators.crops.torso_box``):

- on video (``prepare``/``invoke``/``finish`` in the pipeline), each frame is cropped
  around the previous frame's keypoints, one invoke a frame; when the torso is lost (the
  person left, or the scene cut) that frame is run again on the whole frame;
- on a still image (``estimate``), a first pass on the whole frame finds the person and
  a second on the crop around it gives the pose: two invokes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses
from edgepose.estimators.base import Estimate, Job, ModelEngine, SingleModelEstimator
from edgepose.estimators.crops import Box, torso_box
from edgepose.estimators.runner import ModelRunner, settled

STILL = "still"  # Job.state of a job made by estimate(): no state in, none out


class SinglePersonEstimator(SingleModelEstimator):
    """A single-pose engine run on a crop around its person (see the module docstring).

    ``prepare`` is the single-model one (the whole frame, needed on the first frame and
    whenever the person is lost). ``keypoint_threshold`` is the score from which a
    keypoint places the crop (0.2, the tutorial's ``MIN_CROP_KEYPOINT_SCORE``).
    """

    def __init__(self, engine: ModelEngine, keypoint_threshold: float = 0.2) -> None:
        super().__init__(engine)
        self.keypoint_threshold = keypoint_threshold
        self._model = ModelRunner(engine)
        self._box: Box | None = None  # where the previous frame's person was

    @property
    def multi_pose(self) -> bool:
        return False

    def _next_box(self, poses: Poses, image: npt.NDArray[np.uint8]) -> Box | None:
        if not len(poses):
            return None
        return torso_box(poses.xy[0], poses.scores[0], image.shape[:2], poses.schema,
                         self.keypoint_threshold)

    def invoke(self, job: Job) -> Job:
        still = job.state == STILL
        poses, nxt = None, None
        if not still and self._box is not None:
            poses = self._model.on_boxes(job, [self._box])[0]
            nxt = self._next_box(poses, job.image)
        if nxt is None:  # first frame (or a still), or the person was lost
            poses = self._model.on_frame(job)
            nxt = self._next_box(poses, job.image)
        if still and nxt is not None:
            poses = self._model.on_boxes(job, [nxt])[0]
        elif not still:
            self._box = nxt
        job.outputs = poses
        job.device = self.engine.device
        return job

    def finish(self, job: Job) -> Estimate:
        """Nothing left to compute: the crop of the next frame needed this one's pose
        in ``invoke`` already (MoveNet's decode is a rescale of 17 points)."""
        return settled(job, self.schema, self.engine.device)

    def estimate(self, image: npt.NDArray[np.uint8], timestamp: float = 0.0) -> Estimate:
        """A still image: two passes, nothing kept for the next call."""
        job = self.prepare(image, timestamp)
        job.state = STILL
        return self.finish(self.invoke(job))

    def reset(self) -> None:
        """Forget the previous frame (a new video)."""
        self._box = None
