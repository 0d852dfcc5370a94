"""Real video files made for tests with PyAV from real frames: a variable frame rate
(MKV), a rotation tag (the display matrix phones write), huge frames."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

#: frame durations (ms) of a variable-frame-rate clip, as a phone or a screen recorder
#: writes them: mostly 33 ms, sometimes a long hold
VFR_STEPS_MS = (33, 33, 100, 33, 200, 33, 66)


def read_frames(path: Path, count: int, scale: int = 1) -> list[np.ndarray]:
    """The first ``count`` RGB frames of the video at ``path`` (every ``scale``-th pixel,
    cropped to even sizes)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")[::scale, ::scale]
            h, w = image.shape[:2]
            frames.append(np.ascontiguousarray(image[: h - h % 2, : w - w % 2]))  # even, for yuv420p
            if len(frames) == count:
                break
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], *, pts_ms: Sequence[int] | None = None,
                rotation: int = 0, codec: str = "libx264", rate: int = 30) -> Path:
    """``frames`` (RGB, even sizes) encoded into ``path`` (the container from its suffix).
    ``pts_ms`` gives each frame's time (variable frame rate), else ``rate`` a second;
    ``rotation`` (degrees counter-clockwise) is written as the display matrix, so a
    player turns the stored frames by it."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def vfr_times(count: int) -> list[int]:
    """``count`` increasing frame times (ms) with the steps of ``VFR_STEPS_MS``."""
    times, t = [], 0
    for i in range(count):
        times.append(t)
        t += VFR_STEPS_MS[i % len(VFR_STEPS_MS)]
    return times
