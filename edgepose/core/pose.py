"""The one pose type used end to end: decoders return it, filters and trackers take and
return it, renderers and sinks consume it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.schemas import Schema, get_schema

# What the CLIs keep and draw by default, in one place so `edgepose detect` and
# `edgepose-run` agree: poses scoring below POSE_THRESHOLD are dropped, keypoints below
# KEYPOINT_THRESHOLD are not drawn.
POSE_THRESHOLD = 0.15
KEYPOINT_THRESHOLD = 0.3

FloatArray = npt.NDArray[np.float32]


@dataclass
class Poses:
    """``n`` poses of ``K`` keypoints, as parallel arrays.

    - ``xy``: (n, K, 2) float32, keypoint x, y in source-image pixels.
    - ``scores``: (n, K) float32, per-keypoint confidence in [0, 1]. A missing keypoint
      has score 0; its coordinates mean nothing.
    - ``pose_scores``: (n,) float32, per-pose confidence.
    - ``track_ids``: optional (n,) int64; -1 means not tracked.
    - ``schema``: the keypoint layout name ("coco17", "mpii16").
    """

    xy: FloatArray
    scores: FloatArray
    pose_scores: FloatArray
    schema: str = "coco17"
    track_ids: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.pose_scores = np.asarray(self.pose_scores, dtype=np.float32)
        if self.xy.ndim != 3 or self.xy.shape[2] != 2:
            raise ValueError(f"Poses.xy must have shape (n, K, 2), got {self.xy.shape}")
        n, k = self.xy.shape[:2]
        if self.scores.shape != (n, k):
            raise ValueError(f"Poses.scores must have shape ({n}, {k}), got {self.scores.shape}")
        if self.pose_scores.shape != (n,):
            raise ValueError(
                f"Poses.pose_scores must have shape ({n},), got {self.pose_scores.shape}"
            )
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64)
            if self.track_ids.shape != (n,):
                raise ValueError(
                    f"Poses.track_ids must have shape ({n},), got {self.track_ids.shape}"
                )
        schema = get_schema(self.schema)
        if k and schema.num_keypoints != k:
            raise ValueError(f"schema {self.schema} has {schema.num_keypoints} keypoints, got {k}")

    @classmethod
    def empty(cls, schema: str = "coco17") -> Poses:
        k = get_schema(schema).num_keypoints
        return cls(
            xy=np.zeros((0, k, 2), np.float32),
            scores=np.zeros((0, k), np.float32),
            pose_scores=np.zeros((0,), np.float32),
            schema=schema,
        )

    @classmethod
    def concat(cls, items: list[Poses], schema: str = "coco17") -> Poses:
        if not items:
            return cls.empty(schema)
        tracked = all(p.track_ids is not None for p in items)
        return cls(
            xy=np.concatenate([p.xy for p in items]),
            scores=np.concatenate([p.scores for p in items]),
            pose_scores=np.concatenate([p.pose_scores for p in items]),
            schema=items[0].schema,
            track_ids=np.concatenate([p.track_ids for p in items]) if tracked else None,
        )

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def __getitem__(self, index: int | slice | npt.NDArray[Any] | list[int]) -> Poses:
        """Select poses by index, slice, index list or boolean mask; always returns Poses."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Poses(
            xy=self.xy[index],
            scores=self.scores[index],
            pose_scores=self.pose_scores[index],
            schema=self.schema,
            track_ids=None if self.track_ids is None else self.track_ids[index],
        )

    @property
    def schema_info(self) -> Schema:
        return get_schema(self.schema)

    @property
    def num_keypoints(self) -> int:
        return int(self.xy.shape[1])

    def above(self, pose_threshold: float) -> Poses:
        """The poses whose pose score is at least ``pose_threshold``."""
        return self[self.pose_scores >= pose_threshold]

    def best(self) -> Poses:
        """The highest-scoring pose alone (a crop around one person holds one person)."""
        if len(self) <= 1:
            return self
        return self[[int(np.argmax(self.pose_scores))]]

    def boxes(self, keypoint_threshold: float = 0.0) -> FloatArray:
        """(n, 4) x0, y0, x1, y1 around the keypoints scoring above the threshold (NaN if none)."""
        out = np.full((len(self), 4), np.nan, np.float32)
        for i in range(len(self)):
            ok = self.scores[i] > keypoint_threshold
            if ok.any():
                pts = self.xy[i][ok]
                out[i] = [*pts.min(0), *pts.max(0)]
        return out

    def to_coco_results(self, image_id: int) -> list[dict[str, Any]]:
        """COCO keypoint results (the list pycocotools' ``loadRes`` takes)."""
        out = []
        for i in range(len(self)):
            kps = np.concatenate([self.xy[i], self.scores[i][:, None]], axis=1)
            out.append({
                "image_id": int(image_id),
                "category_id": 1,
                "keypoints": [round(float(v), 3) for v in kps.reshape(-1)],
                "score": round(float(self.pose_scores[i]), 5),
            })
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """Plain JSON-ready dicts, one per pose, keypoints named by the schema."""
        names = self.schema_info.names
        out = []
        for i in range(len(self)):
            rec: dict[str, Any] = {
                "score": round(float(self.pose_scores[i]), 4),
                "keypoints": [
                    {"name": names[k], "x": round(float(self.xy[i, k, 0]), 2),
                     "y": round(float(self.xy[i, k, 1]), 2),
                     "score": round(float(self.scores[i, k]), 4)}
                    for k in range(self.num_keypoints)
                ],
            }
            if self.track_ids is not None:
                rec["track_id"] = int(self.track_ids[i])
            out.append(rec)
        return out
