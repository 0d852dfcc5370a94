"""Real frames for the crop-running estimators: a video's first frames, read with the
runtime's own source."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.sources import open_source
from tests.conftest import shared_path


def video_frames(name: str, count: int) -> list[np.ndarray]:
    source = open_source(str(shared_path("videos", name)))
    try:
        frames = []
        while len(frames) < count:
            frame = source.read()
            if frame is None:
                break
            frames.append(frame.image)
    finally:
        source.close()
    return frames


@pytest.fixture(scope="session")
def pose2sim_frames() -> list[np.ndarray]:
    """The first 12 frames of pose2sim camera 1: a person on a force plate, another one
    standing in the background."""
    return video_frames("pose2sim_singleperson_cam01.mp4", 12)
