"""The live loop: a capture thread that keeps only the newest frame, then inference,
filters, rendering and sinks in the calling thread, with rolling per-stage medians.

Capture never queues: a 1-slot box holds the newest frame and a frame that is replaced
before inference took it counts as dropped, so the processed frame is always fresh.
Unpaced sources (a video file read as fast as possible) instead wait for the slot to
empty, so that every frame is processed.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from edgepose.pose import Poses
from edgepose.sinks import Sink, frame_record
from edgepose.sources.base import Frame, Source

log = logging.getLogger(__name__)

STAGES = ("capture_age_ms", "preprocess_ms", "invoke_ms", "decode_ms", "render_ms", "latency_ms")


class InferenceEngine(Protocol):
    timings: dict[str, float]

    def infer(self, frame: np.ndarray) -> Poses: ...


class FrameRenderer(Protocol):
    def draw(self, image: np.ndarray, poses: Poses, overlay: dict[str, str]) -> bool: ...


PoseFilter = Callable[[Poses, float], Poses]


class LatestFrame:
    """A 1-slot box between the capture thread and the pipeline: ``put`` replaces the
    frame not yet taken (counted in ``dropped``) or, with ``block``, waits for the slot."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._finished = False
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame, *, block: bool = False) -> bool:
        """Store ``frame``; False when the box was closed (the consumer is gone)."""
        with self._cond:
            while block and self._frame is not None and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> Frame | None:
        """The newest frame, or None after ``timeout`` s or once the producer finished."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._finished or self._closed,
                                timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def finish(self) -> None:
        """The producer has no more frames."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def close(self) -> None:
        """The consumer stopped: wake and refuse the producer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        return self._finished


@dataclass
class PipelineStats:
    """Counts and rolling medians (ms) of the stages, see ``STAGES``."""

    captured: int = 0
    processed: int = 0
    dropped: int = 0
    fps: float = 0.0
    medians: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{self.processed} frames processed", f"{self.dropped} dropped",
                 f"{self.fps:.1f} fps"]
        parts += [f"{k[:-3]} {v:.1f} ms" for k, v in self.medians.items()]
        return ", ".join(parts)


class Pipeline:
    """Source → engine → filters → renderer → sinks until the source ends, the renderer
    quits, ``max_frames`` are processed or ``stop()`` is called (from any thread or a
    signal handler). Owns none of them: the caller opens and closes them."""

    def __init__(self, source: Source, engine: InferenceEngine,
                 renderer: FrameRenderer | None = None, sinks: Sequence[Sink] = (), *,
                 mirror: bool = False, pose_threshold: float = 0.0,
                 filters: Sequence[PoseFilter] = (), max_frames: int = 0, window: int = 120,
                 heartbeat: Callable[[], Any] | None = None, log_every: float = 10.0) -> None:
        self.source, self.engine, self.renderer = source, engine, renderer
        self.sinks = list(sinks)
        self.mirror, self.pose_threshold = mirror, pose_threshold
        self.filters = list(filters)
        self.max_frames, self.heartbeat, self.log_every = max_frames, heartbeat, log_every
        self.samples: dict[str, deque[float]] = {k: deque(maxlen=window) for k in STAGES}
        self._ends: deque[float] = deque(maxlen=window)
        self._box = LatestFrame()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._captured = 0
        self._processed = 0
        self.stop_requested_at: float | None = None

    def stop(self) -> None:
        """Ask the loop to end; safe from signal handlers and other threads."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self._stop.set()

    @property
    def stats(self) -> PipelineStats:
        medians = {k: statistics.median(v) for k, v in self.samples.items() if v}
        return PipelineStats(self._captured, self._processed, self._box.dropped,
                             self._fps(), medians)

    def _fps(self) -> float:
        if len(self._ends) < 2 or self._ends[-1] <= self._ends[0]:
            return 0.0
        return (len(self._ends) - 1) / (self._ends[-1] - self._ends[0])

    def _capture(self) -> None:
        block = not self.source.paced
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self._captured += 1
                if not self._box.put(frame, block=block):
                    break
        except BaseException as err:  # handed to run(), which re-raises it
            self._error = err
        finally:
            self._box.finish()

    def run(self) -> PipelineStats:
        """Process frames until done; re-raises a capture error after shutting down."""
        thread = threading.Thread(target=self._capture, name="edgepose-capture", daemon=True)
        thread.start()
        last_log = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.heartbeat is not None:
                    self.heartbeat()
                frame = self._box.take(timeout=0.1)
                if frame is None:
                    if self._box.finished:
                        break
                    continue
                if not self._process(frame):
                    break
                if self.max_frames and self._processed >= self.max_frames:
                    break
                if self.log_every and time.monotonic() - last_log >= self.log_every:
                    last_log = time.monotonic()
                    log.info("%s", self.stats.summary())
        finally:
            self._stop.set()
            self.source.interrupt()
            self._box.close()
            thread.join(timeout=1.0)
            if thread.is_alive():
                log.warning("capture thread still busy in %s.read() after 1 s", self.source)
        if self._error is not None:
            raise self._error
        return self.stats

    def _process(self, frame: Frame) -> bool:
        """One frame through inference, filters, renderer and sinks; False to stop."""
        t0 = time.monotonic()
        self.samples["capture_age_ms"].append((t0 - frame.timestamp) * 1e3)
        if self.mirror:
            frame = Frame(np.ascontiguousarray(frame.image[:, ::-1]), frame.timestamp, frame.index)
        poses = self.engine.infer(frame.image)
        for key in ("preprocess_ms", "invoke_ms", "decode_ms"):
            if key in self.engine.timings:
                self.samples[key].append(self.engine.timings[key])
        if self.pose_threshold > 0:
            poses = poses.above(self.pose_threshold)
        for f in self.filters:
            poses = f(poses, frame.timestamp)
        keep_going = True
        if self.renderer is not None:
            t1 = time.monotonic()
            keep_going = bool(self.renderer.draw(frame.image, poses, self.overlay(poses)))
            self.samples["render_ms"].append((time.monotonic() - t1) * 1e3)
        end = time.monotonic()
        latency_ms = (end - frame.timestamp) * 1e3
        self.samples["latency_ms"].append(latency_ms)
        if self.sinks:
            record = frame_record(frame, poses, latency_ms)
            for sink in self.sinks:
                sink.write(record)
        self._ends.append(end)
        self._processed += 1
        if not keep_going:
            log.info("renderer asked to quit")
        return keep_going

    def overlay(self, poses: Poses) -> dict[str, str]:
        """The text drawn on screen: frame rate, inference time and pose count."""
        invoke = self.engine.timings.get("invoke_ms", 0.0)
        return {"FPS": f"{self._fps():.1f}", "inference": f"{invoke:.1f} ms",
                "poses": str(len(poses))}
