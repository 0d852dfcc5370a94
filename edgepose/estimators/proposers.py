"""What finds the people a top-down pipeline crops: a ``Proposer`` gives ``Proposal``s
(a crop box and, when it has one, its own pose of the person)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.estimators.base import Job, ModelEngine
from edgepose.estimators.crops import Box, person_box
from edgepose.estimators.nms import oks_matrix
from edgepose.estimators.params import TopDownParams
from edgepose.estimators.runner import ModelRunner


@dataclass(frozen=True)
class Proposal:
    """Where to crop a person, and the proposer's own pose of them when it has one (a
    candidate too: kept when the landmark crop gets that person wrong)."""

    box: Box
    pose: Poses | None = None


class Proposer(Protocol):
    """Finds the people a top-down pipeline crops: PoseNet's poses here; a person
    detector (BlazePose's) would be another. ``prepare`` makes its input from a frame
    (on the capture thread when it can); ``propose`` returns the people not among
    ``tracked`` (this frame's temporal poses), best first."""

    def prepare(self, image: npt.NDArray[np.uint8]) -> tuple[Any, Transform, float]: ...

    def propose(self, job: Job, prepared: tuple[Any, Transform] | None,
                tracked: list[Poses]) -> list[Proposal]: ...


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
                tracked: list[Poses]) -> list[Proposal]:
        p = self.params
        if prepared is None:
            tensor, transform, ms = self.prepare(job.image)
            job.add_time("preprocess_ms", ms)
        else:
            tensor, transform = prepared
        found = self.runner.run(job, tensor, transform)
        found = found[np.argsort(-found.pose_scores, kind="stable")]
        tracked = [_in_schema(t, found.schema) for t in tracked]
        if tracked and len(found):
            n = len(tracked)
            sim = oks_matrix(Poses.concat([*tracked, found]), p.keypoint_threshold)
            sim = np.maximum(sim[n:, :n], sim[:n, n:].T)  # proposals x tracked, either way round
            found = found[sim.max(axis=1) <= p.match_oks]
        size = job.image.shape[:2]
        out = []
        for i in range(len(found)):
            box = person_box(found.xy[i], found.scores[i], size, p.crop_margin, p.keypoint_threshold,
                             float(found.pose_scores[i]))
            if box is not None:
                out.append(Proposal(box, found[i:i + 1]))
        return out


def _in_schema(poses: Poses, schema: str) -> Poses:
    """``poses`` with the keypoints ``schema`` shares with theirs (COCO-17 <-> MPII-16), the
    rest unseen (score 0): a landmark model's people compared with the proposer's."""
    if poses.schema == schema:
        return poses
    from edgepose.core.schemas import MPII_TO_COCO, get_schema

    pairs = MPII_TO_COCO if (poses.schema, schema) == ("mpii16", "coco17") else \
        {c: m for m, c in MPII_TO_COCO.items()}
    k = get_schema(schema).num_keypoints
    xy = np.zeros((len(poses), k, 2), np.float32)
    scores = np.zeros((len(poses), k), np.float32)
    for src, dst in pairs.items():
        xy[:, dst], scores[:, dst] = poses.xy[:, src], poses.scores[:, src]
    return Poses(xy, scores, poses.pose_scores, schema, poses.track_ids)
