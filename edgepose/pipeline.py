"""The live loop, three stages in three threads joined by 1-slot boxes:

capture + preprocessing (newest frame only) -> invoke + decode + filters + sinks ->
rendering (calling thread, as SDL wants). Rendering frame N overlaps inferring frame N+1, so throughput is set by
the slowest stage rather than the sum of all, with rolling per-stage medians.

Nothing ever queues: a frame replaced before inference took it counts as dropped, so the
processed frame is always fresh; a result replaced before it was drawn is simply not
shown (its JSON record was written already). Unpaced sources (a video file read as fast
as possible) instead wait for each slot to empty, so that every frame is processed.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Protocol, Sequence, TypeVar

import numpy as np

from edgepose.pose import Poses
from edgepose.preprocess import Transform
from edgepose.sinks import Sink, frame_record
from edgepose.sources.base import Frame, Source

log = logging.getLogger(__name__)

T = TypeVar("T")
STAGES = ("capture_age_ms", "preprocess_ms", "invoke_ms", "decode_ms", "render_ms", "latency_ms")


class InferenceEngine(Protocol):
    """What the pipeline needs of ``edgepose.engine.Engine``."""

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Transform]: ...

    def invoke(self, tensor: np.ndarray) -> list[Any]: ...

    def decode(self, outputs: list[Any], transform: Transform) -> Poses: ...


class FrameRenderer(Protocol):
    def draw(self, image: np.ndarray, poses: Poses, overlay: dict[str, str]) -> bool: ...


PoseFilter = Callable[[Poses, float], Poses]


def limit_library_threads() -> None:
    """Keep OpenCV to one worker thread (process-wide; for the daemon, not at import).

    The pipeline already runs capture, inference and rendering in parallel threads;
    OpenCV's own pool (video decoding, resizing) would otherwise take cores from the
    interpreter: on 2 cores with PoseNet on the CPU this raised throughput from ~0.82 to
    ~0.94 of a bare invoke() loop.
    """
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(1)


class LatestBox(Generic[T]):
    """A 1-slot box between two threads: ``put`` replaces the item not yet taken
    (counted in ``dropped``) or, with ``block``, waits for the slot to empty."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: T | None = None
        self._finished = False
        self._closed = False
        self.dropped = 0

    def put(self, frame: T, *, block: bool = False) -> bool:
        """Store an item; False when the box was closed (the consumer is gone)."""
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

    def take(self, timeout: float) -> T | None:
        """The newest item, or None after ``timeout`` s or once the producer finished."""
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


LatestFrame = LatestBox[Frame]


@dataclass(frozen=True)
class Prepared:
    """A captured frame (mirrored if asked) with its model input, made in the capture
    thread so that the inference thread only invokes and decodes."""

    frame: Frame
    tensor: np.ndarray
    transform: Transform
    preprocess_ms: float


@dataclass(frozen=True)
class Result:
    """One inferred frame on its way to the renderer."""

    frame: Frame
    poses: Poses
    timings: dict[str, float]


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
    """Source -> engine -> filters -> sinks -> renderer until the source ends, the renderer
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
        self._frames: LatestBox[Prepared] = LatestBox()
        self._results: LatestBox[Result] = LatestBox()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._captured = 0
        self._processed = 0
        self._last_invoke = 0.0
        self.stop_requested_at: float | None = None

    def stop(self) -> None:
        """Ask the loop to end; safe from signal handlers and other threads."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self._stop.set()

    @property
    def stats(self) -> PipelineStats:
        medians = {k: statistics.median(v) for k, v in self.samples.items() if v}
        return PipelineStats(self._captured, self._processed, self._frames.dropped,
                             self._fps(), medians)

    def _fps(self) -> float:
        ends = list(self._ends)
        if len(ends) < 2 or ends[-1] <= ends[0]:
            return 0.0
        return (len(ends) - 1) / (ends[-1] - ends[0])

    def _capture(self) -> None:
        block = not self.source.paced
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self._captured += 1
                if not self._frames.put(self._prepare(frame), block=block):
                    break
        except BaseException as err:  # handed to run(), which re-raises it
            self._errors.append(err)
        finally:
            self._frames.finish()

    def _infer_loop(self) -> None:
        block = not self.source.paced
        try:
            while not self._stop.is_set():
                item = self._frames.take(timeout=0.1)
                if item is None:
                    if self._frames.finished:
                        break
                    continue
                result = self._infer(item)
                if not self._results.put(result, block=block):
                    break
                if self.max_frames and self._processed >= self.max_frames:
                    break
        except BaseException as err:
            self._errors.append(err)
        finally:
            self._frames.close()  # capture stops too
            self._results.finish()

    def _prepare(self, frame: Frame) -> Prepared:
        t0 = time.perf_counter()
        if self.mirror:
            frame = Frame(np.ascontiguousarray(frame.image[:, ::-1]), frame.timestamp, frame.index)
        tensor, transform = self.engine.preprocess(frame.image)
        return Prepared(frame, tensor, transform, (time.perf_counter() - t0) * 1e3)

    def _infer(self, item: Prepared) -> Result:
        """Invoke, decode, filters and sinks for one prepared frame."""
        frame = item.frame
        t0 = time.monotonic()
        self.samples["capture_age_ms"].append((t0 - frame.timestamp) * 1e3)
        outputs = self.engine.invoke(item.tensor)
        t1 = time.monotonic()
        poses = self.engine.decode(outputs, item.transform)
        t2 = time.monotonic()
        timings = {"preprocess_ms": item.preprocess_ms, "invoke_ms": (t1 - t0) * 1e3,
                   "decode_ms": (t2 - t1) * 1e3}
        for key, value in timings.items():
            self.samples[key].append(value)
        if self.pose_threshold > 0:
            poses = poses.above(self.pose_threshold)
        for f in self.filters:
            poses = f(poses, frame.timestamp)
        if self.sinks:
            record = frame_record(frame, poses, (time.monotonic() - frame.timestamp) * 1e3)
            for sink in self.sinks:
                sink.write(record)
        self._processed += 1
        return Result(frame, poses, timings)

    def run(self) -> PipelineStats:
        """Process frames until done; re-raises a stage's error after shutting down."""
        threads = [threading.Thread(target=self._capture, name="edgepose-capture", daemon=True),
                   threading.Thread(target=self._infer_loop, name="edgepose-infer", daemon=True)]
        for t in threads:
            t.start()
        last_log = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.heartbeat is not None:
                    self.heartbeat()
                result = self._results.take(timeout=0.1)
                if result is None:
                    if self._results.finished:
                        break
                    continue
                if not self._show(result):
                    break
                if self.log_every and time.monotonic() - last_log >= self.log_every:
                    last_log = time.monotonic()
                    log.info("%s", self.stats.summary())
        finally:
            self._stop.set()
            self.source.interrupt()
            self._results.close()
            self._frames.close()
            for t in threads:
                t.join(timeout=1.0)
                if t.is_alive():
                    log.warning("%s thread still busy after 1 s (%s)", t.name, self.source)
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _show(self, result: Result) -> bool:
        """Draw one result; False when the renderer asks to quit."""
        self._last_invoke = result.timings.get("invoke_ms", 0.0)
        keep_going = True
        if self.renderer is not None:
            t1 = time.monotonic()
            keep_going = bool(self.renderer.draw(result.frame.image, result.poses,
                                                 self.overlay(result.poses)))
            self.samples["render_ms"].append((time.monotonic() - t1) * 1e3)
        end = time.monotonic()
        self.samples["latency_ms"].append((end - result.frame.timestamp) * 1e3)
        self._ends.append(end)
        if not keep_going:
            log.info("renderer asked to quit")
        return keep_going

    def overlay(self, poses: Poses) -> dict[str, str]:
        """The text drawn on screen: frame rate, inference time and pose count."""
        invoke = self._last_invoke
        return {"FPS": f"{self._fps():.1f}", "inference": f"{invoke:.1f} ms",
                "poses": str(len(poses))}
