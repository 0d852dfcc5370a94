"""Estimators that run a model on crops around people: ``SinglePersonEstimator`` (one
single-pose model, temporal crops) and ``TopDownEstimator`` (a proposer model finds
people, a landmark model poses each one; ``kind = "topdown"`` manifests)."""

from __future__ import annotations

from edgepose.topdown.multi import PoseProposer, Proposal, Proposer, TopDownEstimator, TopDownParams
from edgepose.topdown.nms import keypoint_sigmas, oks, oks_matrix, pose_nms
from edgepose.topdown.single import SinglePersonEstimator

__all__ = ["PoseProposer", "Proposal", "Proposer", "SinglePersonEstimator", "TopDownEstimator", "TopDownParams",
           "keypoint_sigmas", "oks", "oks_matrix", "pose_nms"]
