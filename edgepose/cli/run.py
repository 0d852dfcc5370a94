"""``edgepose-run``: camera (or video) -> model -> skeleton on the screen, as a daemon.

Settings come from defaults, then ``--config FILE`` (TOML), then flags (flags win).
SIGINT/SIGTERM stop within a second and release the camera, Edge TPU and display.
Exit codes: 0 clean, 2 bad config or input, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any, Sequence

from edgepose import sdnotify
from edgepose.cli.common import EXIT_OK, EXIT_RUNTIME, ArgumentParser, run_cli, setup_logging
from edgepose.config import DISPLAYS, LOG_LEVELS, RunConfig, build_config

log = logging.getLogger("edgepose.run")
PROG = "edgepose-run"
D = RunConfig()


def build_parser() -> ArgumentParser:
    """Flags default to 'not given' so that a config file value is only overridden when
    the flag is on the command line; the effective defaults are listed in the help."""
    from edgepose.sources import SOURCE_HELP

    p = ArgumentParser(prog=PROG, description=__doc__, argument_default=argparse.SUPPRESS,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--config", metavar="FILE", help="TOML file with any of the settings below "
        "(keys as the flags, with _ or -)")
    add("--model", help=f"model name or .tflite path (default {D.model})")
    add("--device", help=f"auto, cpu, edgetpu, usb, pci or :N (default {D.device})")
    add("--num-threads", type=int, metavar="N", help="CPU interpreter threads")
    add("--source", help=f"{SOURCE_HELP} (default {D.source})")
    add("--width", type=int, help=f"camera width (default {D.width})")
    add("--height", type=int, help=f"camera height (default {D.height})")
    add("--fps", type=float, help=f"camera frame rate (default {D.fps:g})")
    add("--loop", action=argparse.BooleanOptionalAction, help="restart a video file at its end")
    add("--realtime", action=argparse.BooleanOptionalAction,
        help="play a video file at its frame rate instead of as fast as possible")
    add("--display", choices=DISPLAYS, help=f"where to draw (default {D.display})")
    add("--mirror", action=argparse.BooleanOptionalAction,
        help="flip frames left-right before inference (selfie view)")
    add("--keypoint-threshold", type=float, metavar="S",
        help=f"draw keypoints scoring at least S (default {D.keypoint_threshold})")
    add("--pose-threshold", type=float, metavar="S",
        help=f"keep poses scoring at least S (default {D.pose_threshold})")
    add("--json", metavar="FILE", help="write JSON Lines, one record per frame (- for stdout)")
    add("--record", metavar="FILE.mp4", help="record the annotated frames to an MP4")
    add("--snapshot-every", type=int, metavar="N", help="save every Nth annotated frame")
    add("--snapshot-dir", metavar="DIR", help="folder for --snapshot-every")
    add("--max-frames", type=int, metavar="N", help="stop after N frames (0: no limit)")
    add("--smooth", action=argparse.BooleanOptionalAction,
        help="smooth keypoints over time (One Euro filter)")
    add("--track", action=argparse.BooleanOptionalAction, help="assign track ids to poses")
    add("--log-level", type=str.upper, choices=LOG_LEVELS, help=f"(default {D.log_level})")
    return p


class _Stopper:
    """SIGINT/SIGTERM handler: asks the pipeline to stop and remembers when."""

    def __init__(self) -> None:
        self.pipeline: Any = None
        self.source: Any = None  # interrupted too: a stream may still be opening
        self.signal_at: float | None = None
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_at is None:
            self.signal_at = time.monotonic()
            self.signum = signum
        if self.source is not None:
            self.source.interrupt()
        if self.pipeline is not None:
            self.pipeline.stop()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self)
            except ValueError:  # not the main thread (embedded use): no handlers
                pass

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def _filters(cfg: RunConfig) -> list[Any]:
    if not (cfg.smooth or cfg.track):
        return []
    from edgepose.filters import make_filters

    return make_filters(smooth=cfg.smooth, track=cfg.track)


def run(cfg: RunConfig) -> int:
    """Open everything ``cfg`` names, run the pipeline, release everything."""
    from edgepose.engine import open_engine
    from edgepose.errors import SourceError
    from edgepose.pipeline import Pipeline, limit_library_threads
    from edgepose.render import make_renderer
    from edgepose.sinks import JsonLinesSink
    from edgepose.sources import make_source

    stopper = _Stopper()
    stopper.install()
    rc = EXIT_OK
    try:
        with ExitStack() as stack:
            source = make_source(cfg.source, width=cfg.width, height=cfg.height, fps=cfg.fps,
                                 loop=cfg.loop, realtime=cfg.realtime)
            stopper.source = source
            stack.callback(source.close)
            try:
                source.open()
            except SourceError:
                if stopper.signal_at is None:
                    raise
                return rc  # stopped while the source was opening: a clean stop
            engine = open_engine(cfg.model, cfg.device, num_threads=cfg.num_threads)
            limit_library_threads()
            stack.callback(engine.close)
            sinks = []
            if cfg.json:
                sink = JsonLinesSink(cfg.json)
                stack.callback(sink.close)
                sinks.append(sink)
            renderer = make_renderer(
                cfg.display, keypoint_threshold=cfg.keypoint_threshold,
                record=Path(cfg.record) if cfg.record else None,
                snapshot_every=cfg.snapshot_every,
                snapshot_dir=Path(cfg.snapshot_dir) if cfg.snapshot_dir else None,
                fps=getattr(source, "frame_rate", 0.0) or cfg.fps)
            stack.callback(renderer.close)
            pipeline = Pipeline(source, engine, renderer, sinks, mirror=cfg.mirror,
                                pose_threshold=cfg.pose_threshold, filters=_filters(cfg),
                                max_frames=cfg.max_frames, heartbeat=sdnotify.Watchdog().ping)
            stopper.pipeline = pipeline
            if stopper.signal_at is not None:
                pipeline.stop()
            log.info("running %s on %s (%s) from %s", engine.name, engine.device,
                     cfg.model, source.name)
            sdnotify.ready(status=f"{engine.name} on {engine.device} from {source.name}")
            try:
                stats = pipeline.run()
                log.info("done: %s", stats.summary())
            except BrokenPipeError:  # `--json - | head`: the reader has all it wanted
                log.info("the reader of the JSON output went away; stopping")
            except Exception as err:  # a failure mid-run, after a good start
                log.error("runtime failure: %s", err)
                log.debug("traceback", exc_info=True)
                rc = EXIT_RUNTIME
            sdnotify.stopping()
    finally:
        stopper.restore()
        if stopper.signal_at is not None:
            log.info("stopped in %.0f ms after signal %d",
                     (time.monotonic() - stopper.signal_at) * 1e3, stopper.signum)
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config", None)
    setup_logging(args.get("log_level", D.log_level))

    def go() -> int:
        cfg = build_config(args, config_file)
        logging.getLogger().setLevel(cfg.log_level)
        return run(cfg)

    return run_cli(PROG, go)


if __name__ == "__main__":
    sys.exit(main())
