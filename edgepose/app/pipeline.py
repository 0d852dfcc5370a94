"""The live loop: five stages on five threads joined by 1-slot boxes (never a queue).

capture + ``estimator.prepare`` -> ``estimator.invoke`` (the accelerator) ->
``estimator.finish`` + filters + records + non-blocking outputs -> file outputs (writer)
and rendering (the calling thread, as SDL wants).

Consecutive frames overlap: while frame N+1 is being invoked, frame N is decoded, N-1
written and drawn, so throughput is set by the slowest stage rather than the sum of all.
A live source's frame replaced before inference took it counts as dropped, so the
processed frame is always fresh; a result replaced before it was drawn is not shown (its
record was written already). Unpaced sources (a video file read as fast as possible, an
image folder) wait for each slot instead, so every frame is processed, in order. Between
invoke, decode and the writer nothing is ever dropped.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edgepose.app.filters import PoseFilter
from edgepose.core.errors import OutputError
from edgepose.core.latest import LatestBox
from edgepose.core.opencv import optional_cv2
from edgepose.core.pose import Poses
from edgepose.estimators.base import Estimate, Estimator, Job
from edgepose.outputs.base import FrameResult, Output
from edgepose.outputs.records import frame_record
from edgepose.sources.base import Frame, Source

log = logging.getLogger(__name__)

# The stages a run reports medians of (an estimator's own are ESTIMATOR_STAGES).
PIPELINE_STAGES = ("capture_age_ms", "preprocess_ms", "invoke_ms", "decode_ms", "write_ms", "render_ms",
                   "latency_ms")
__all__ = ["PIPELINE_STAGES", "FrameRenderer", "Pipeline", "PipelineStats", "limit_library_threads"]


class FrameRenderer(Protocol):
    def draw(self, image: np.ndarray, poses: Poses, overlay: dict[str, str]) -> bool: ...




def limit_library_threads() -> None:
    """Keep OpenCV to one worker thread (process-wide; for the daemon, not at import).

    The pipeline already runs its stages in parallel threads; OpenCV's own pool (video
    decoding, resizing) would otherwise take cores from the interpreter: on 2 cores with
    PoseNet on the CPU this raised throughput from ~0.82 to ~0.94 of a bare invoke() loop.
    """
    cv2 = optional_cv2()
    if cv2 is not None:
        cv2.setNumThreads(1)


@dataclass
class _Item:
    """A frame between stages: its job (None for an unreadable frame) and, once
    finished, its estimate."""

    frame: Frame
    job: Job | None = None
    estimate: Estimate | None = None
    result: FrameResult | None = None


@dataclass
class PipelineStats:
    """Counts and rolling medians (ms) of the stages, see ``PIPELINE_STAGES``."""

    captured: int = 0
    processed: int = 0
    dropped: int = 0
    fps: float = 0.0
    medians: dict[str, float] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{self.processed} frames processed", f"{self.dropped} dropped",
                 f"{self.fps:.1f} fps"]
        if self.devices:
            parts.append("on " + ", ".join(f"{d} {n}" for d, n in sorted(self.devices.items())))
        parts += [f"{k[:-3]} {v:.1f} ms" for k, v in self.medians.items()]
        return ", ".join(parts)


class Pipeline:
    """Source -> estimator -> filters -> outputs -> renderer until the source ends, the
    renderer quits, ``max_frames`` are processed or ``stop()`` is called (from any thread
    or a signal handler). Owns none of them: the caller opens and closes them.

    ``heartbeat`` is called after every frame that made it through (the watchdog: no
    progress, no pings). A blocking output that fails is closed and listed in
    ``failed_outputs``; the run goes on without it.
    """

    def __init__(self, source: Source, estimator: Estimator,
                 renderer: FrameRenderer | None = None, outputs: Sequence[Output] = (), *,
                 mirror: bool = False, pose_threshold: float = 0.0,
                 filters: Sequence[PoseFilter] = (), max_frames: int = 0, window: int = 120,
                 heartbeat: Callable[[], Any] | None = None, log_every: float = 10.0) -> None:
        self.source, self.estimator, self.renderer = source, estimator, renderer
        self._blocking = [o for o in outputs if o.blocking]
        self._streams = [o for o in outputs if not o.blocking]
        self.failed_outputs: list[Output] = []
        self.mirror, self.pose_threshold = mirror, pose_threshold
        self.filters = list(filters)
        self.max_frames, self.heartbeat, self.log_every = max_frames, heartbeat, log_every
        self.samples: dict[str, deque[float]] = {k: deque(maxlen=window) for k in PIPELINE_STAGES}
        self._ends: deque[float] = deque(maxlen=window)
        self._prepared: LatestBox[_Item] = LatestBox()
        self._invoked: LatestBox[_Item] = LatestBox()
        self._to_write: LatestBox[_Item] = LatestBox()
        self._results: LatestBox[_Item] = LatestBox()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._captured = 0
        self._processed = 0
        self._devices: dict[str, int] = {}
        self._last: Estimate | None = None
        self.stop_requested_at: float | None = None

    def stop(self) -> None:
        """Ask the loop to end; safe from signal handlers and other threads."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self._stop.set()

    @property
    def stats(self) -> PipelineStats:
        medians = {k: statistics.median(v) for k, v in self.samples.items() if v}
        return PipelineStats(self._captured, self._processed, self._prepared.dropped,
                             self._fps(), medians, dict(self._devices))

    def _fps(self) -> float:
        ends = list(self._ends)
        if len(ends) < 2 or ends[-1] <= ends[0]:
            return 0.0
        return (len(ends) - 1) / (ends[-1] - ends[0])

    # ---- the stages -----------------------------------------------------------------

    def _stage(self, inbox: LatestBox[_Item], outbox: LatestBox[_Item],
               work: Callable[[_Item], _Item], *, block: bool = True,
               last: Callable[[], bool] | None = None) -> Callable[[], None]:
        """A thread body: take from ``inbox``, ``work`` on it, put into ``outbox``; ends when
        the inbox is finished, the outbox closed, or ``last()`` says that was the last."""

        def body() -> None:
            try:
                while not self._stop.is_set():
                    item = inbox.take(timeout=0.1)
                    if item is None:
                        if inbox.finished:
                            break
                        continue
                    if not outbox.put(work(item), block=block) or (last is not None and last()):
                        break
            except BaseException as err:  # handed to run(), which re-raises it
                self._errors.append(err)
            finally:
                inbox.close()  # the producer stops too
                outbox.finish()

        return body

    def _capture(self) -> None:
        block = not self.source.paced
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self._captured += 1
                if not self._prepared.put(self._prepare(frame), block=block):
                    break
        except BaseException as err:
            self._errors.append(err)
        finally:
            self._prepared.finish()

    def _prepare(self, frame: Frame) -> _Item:
        if frame.error:
            return _Item(frame)
        if self.mirror:
            frame = Frame(np.ascontiguousarray(frame.image[:, ::-1]), frame.timestamp,
                          frame.index, frame.name)
        return _Item(frame, self.estimator.prepare(frame.image, frame.timestamp))

    def _invoke(self, item: _Item) -> _Item:
        if item.job is not None:
            self.samples["capture_age_ms"].append((time.monotonic() - item.frame.timestamp) * 1e3)
            self.estimator.invoke(item.job)
        return item

    def _finish(self, item: _Item) -> _Item:
        frame = item.frame
        if item.job is None:
            est = Estimate(Poses.empty(self.estimator.schema), {}, 0, "")
        else:
            est = self.estimator.finish(item.job)
            for key, value in est.timings.items():
                if key in self.samples:
                    self.samples[key].append(value)
            self._devices[est.device] = self._devices.get(est.device, 0) + 1
            self._last = est
        poses = est.poses
        if self.pose_threshold > 0:
            poses = poses.above(self.pose_threshold)
        for f in self.filters:
            poses = f(poses, frame.timestamp)
        record = frame_record(frame, poses, (time.monotonic() - frame.timestamp) * 1e3,
                              device=est.device, timings=est.timings, invokes=est.invokes)
        item.estimate, item.result = est, FrameResult(record, frame.image, poses)
        for out in list(self._streams):
            self._write(out, item.result)  # returns at once: the newest wins on its thread
        self._processed += 1
        return item

    def _write_all(self, item: _Item) -> _Item:
        t0 = time.monotonic()
        assert item.result is not None
        for out in list(self._blocking):
            self._write(out, item.result)
        self.samples["write_ms"].append((time.monotonic() - t0) * 1e3)
        return item

    def _write(self, out: Output, result: FrameResult) -> None:
        try:
            out.write(result)
        except BrokenPipeError:  # `--json - | head`: the reader has all it wanted
            log.info("the reader of %s went away; stopping", out.spec)
            self._drop(out)
            self.stop()
        except OutputError as err:
            self._fail(out, str(err))
        except Exception as err:  # a backend bug must not stop the run either
            self._fail(out, f"{out.spec}: {type(err).__name__}: {err}")
            log.debug("output failure", exc_info=True)

    def _fail(self, out: Output, message: str) -> None:
        log.error("output stopped: %s", message)
        out.error = message
        self.failed_outputs.append(out)
        self._drop(out)

    def _drop(self, out: Output) -> None:
        for group in (self._blocking, self._streams):
            if out in group:
                group.remove(out)
        try:
            out.close()
        except Exception as err:
            log.debug("closing failed output %s: %s", out.spec, err)

    # ---- running --------------------------------------------------------------------

    def run(self) -> PipelineStats:
        """Process frames until done; re-raises a stage's error after shutting down."""
        paced = self.source.paced

        def enough() -> bool:
            return bool(self.max_frames) and self._processed >= self.max_frames

        bodies = {
            "capture": self._capture,
            "infer": self._stage(self._prepared, self._invoked, self._invoke),
            "decode": self._stage(self._invoked, self._to_write, self._finish, last=enough),
            "write": self._stage(self._to_write, self._results, self._write_all, block=not paced),
        }
        threads = [threading.Thread(target=b, name=f"edgepose-{n}", daemon=True)
                   for n, b in bodies.items()]
        for t in threads:
            t.start()
        last_log = time.monotonic()
        try:
            while not self._stop.is_set():
                item = self._results.take(timeout=0.1)
                if item is None:
                    if self._results.finished:
                        break
                    continue
                if not self._show(item):
                    break
                if self.heartbeat is not None:
                    self.heartbeat()
                if self.log_every and time.monotonic() - last_log >= self.log_every:
                    last_log = time.monotonic()
                    log.info("%s", self.stats.summary())
        finally:
            self._stop.set()
            self.source.interrupt()
            for box in (self._results, self._to_write, self._invoked, self._prepared):
                box.close()
            for t in threads:
                t.join(timeout=1.0)
                if t.is_alive():
                    log.warning("%s thread still busy after 1 s (%s)", t.name, self.source)
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _show(self, item: _Item) -> bool:
        """Draw one result; False when the renderer asks to quit."""
        assert item.result is not None
        keep_going = True
        if self.renderer is not None and not item.frame.error:
            t1 = time.monotonic()
            keep_going = bool(self.renderer.draw(item.frame.image, item.result.poses,
                                                 self.overlay(item.result.poses)))
            self.samples["render_ms"].append((time.monotonic() - t1) * 1e3)
        end = time.monotonic()
        self.samples["latency_ms"].append((end - item.frame.timestamp) * 1e3)
        self._ends.append(end)
        if not keep_going:
            log.info("renderer asked to quit")
        return keep_going

    def overlay(self, poses: Poses) -> dict[str, str]:
        """The text drawn on screen: frame rate, inference time, device and pose count."""
        last = self._last
        invoke = last.timings.get("invoke_ms", 0.0) if last else 0.0
        return {"FPS": f"{self._fps():.1f}", "inference": f"{invoke:.1f} ms",
                "device": last.device if last else self.estimator.device,
                "poses": str(len(poses))}
