"""``edgepose-run``: camera (or video) -> model -> skeleton on the screen, as a daemon.

Settings come from defaults, then ``--config FILE`` (TOML), then flags (flags win).
SIGINT, SIGTERM and SIGHUP stop within a second and release the camera, Edge TPU and
display, with every output flushed and closed. Every output is checked before any is
opened, and a file output replaces an existing file only once the first frame is done.
Exit codes: 0 clean, 2 bad config or input, 1 runtime failure (an output that failed,
a source that broke or ended truncated, a device that stopped answering).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

from edgepose.cli.common import EXIT_OK, EXIT_RUNTIME, ArgumentParser, StopHandler, run_cli, setup_logging
from edgepose.core.errors import ConfigError, SourceError

if TYPE_CHECKING:  # numpy-backed modules load inside main(), once signals are handled
    from edgepose.app.config import RunConfig
    from edgepose.outputs import Output

log = logging.getLogger("edgepose.run")
PROG = "edgepose-run"


def build_parser() -> ArgumentParser:
    """One flag per setting of ``RunConfig``. Flags default to 'not given' so that a config
    file value is only overridden when the flag is on the command line; the effective
    defaults are listed in the help."""
    from edgepose.app.config import SETTINGS, value_types

    p = ArgumentParser(prog=PROG, description=__doc__, argument_default=argparse.SUPPRESS,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="TOML file with any of the settings below "
                   "(keys as the flags, with _ or -)")
    for f in SETTINGS:
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        default = "" if f.default in (None, ()) else f" (default {f.default})"
        kwargs: dict[str, Any] = {"help": meta["help"] + default}
        types = value_types(f.name)
        if bool in types:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif list in types:
            kwargs.update(action="append", metavar=meta["metavar"] or f.name.upper())
        else:
            kwargs["type"] = str.upper if f.name == "log_level" else types[-1]
            if meta["choices"]:
                kwargs["choices"] = [c for c in meta["choices"] if c is not None]
            elif meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        p.add_argument(flag, **kwargs)
    return p


class _Stopper(StopHandler):
    """SIGINT/SIGTERM/SIGHUP handler: interrupts whatever is running (a source that is
    still opening, the pipeline) and remembers when."""

    def __init__(self) -> None:
        super().__init__()
        self.pipeline: Any = None
        self.source: Any = None
        self.signal_at: float | None = None
        self.signum = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_at is None:
            self.signal_at = time.monotonic()
            self.signum = signum
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.source is not None:
            self.source.interrupt()

    @property
    def stopped(self) -> bool:
        return self.signal_at is not None


def _filters(cfg: RunConfig) -> list[Any]:
    if not (cfg.smooth or cfg.track):
        return []
    from edgepose.app.filters import make_filters

    return make_filters(smooth=cfg.smooth, track=cfg.track)


class OutputFlag(NamedTuple):
    """An output flag: the registry kind (``edgepose.outputs.make_output``) it builds from
    the value of the setting ``spec``, with ``options`` (option name -> setting) and
    ``flag=`` its name for messages. On when ``spec`` and every setting in ``needs`` are
    set; a tuple of specs (``--output``) makes one output each."""

    flag: str
    kind: str | None  # None: the kind each spec's URL scheme or file suffix selects
    spec: str
    options: Mapping[str, str]
    needs: tuple[str, ...] = ()


_THRESHOLD = {"keypoint_threshold": "keypoint_threshold"}
#: every output flag of edgepose-run, in the order its outputs are made, opened and written
OUTPUT_FLAGS: tuple[OutputFlag, ...] = (
    OutputFlag("--json", "jsonl", "json", {}),  # JSON Lines whatever the file is called
    OutputFlag("--output", None, "output", _THRESHOLD),
    OutputFlag("--record", "mp4", "record", {"fps": "fps", **_THRESHOLD}),
    OutputFlag("--snapshot-dir", "snapshots", "snapshot_dir", {"every": "snapshot_every", **_THRESHOLD},
               needs=("snapshot_every",)),
    OutputFlag("--serve", "serve", "serve", {"token": "serve_token", **_THRESHOLD}),
)


def make_outputs(cfg: RunConfig) -> list[Output]:
    """Every output ``cfg`` names (``OUTPUT_FLAGS``), made by the outputs registry and
    checked (no side effects), one destination used once."""
    from edgepose.outputs import make_output
    from edgepose.outputs.files import destination

    outputs: list[Output] = []
    for row in OUTPUT_FLAGS:
        value = getattr(cfg, row.spec)
        if not (value and all(getattr(cfg, need) for need in row.needs)):
            continue
        options = {name: getattr(cfg, setting) for name, setting in row.options.items()}
        for spec in value if isinstance(value, tuple) else (value,):
            outputs.append(make_output(spec, kind=row.kind, flag=row.flag, **options))
    seen: dict[tuple[object, ...], str] = {}
    for out in outputs:
        path = getattr(out, "path", None)
        if not (isinstance(path, Path) or getattr(out, "stdout", False)):
            continue
        key = destination(path if isinstance(path, Path) else None)
        name = f"{getattr(out, 'flag', '--output')} {out.spec}"
        if key is None:
            continue
        if key in seen:
            where = "stdout" if key == ("stdout",) else "the same file"
            raise ConfigError(f"{out.spec} is given twice: {seen[key]} and {name} both write to "
                              f"{where}; one destination serves one output: drop one or give each "
                              "its own file")
        seen[key] = name
    for out in outputs:
        out.check()
    return outputs


def _warm_up(estimator: Any, cfg: RunConfig) -> None:
    """One inference on a blank frame before any output is opened: a decoder parameter
    or preprocessing that cannot work is a start-up error (exit 2), not a mid-run one."""
    import numpy as np

    estimator.estimate(np.zeros((cfg.height, cfg.width, 3), np.uint8))


def run(cfg: RunConfig) -> int:
    """Open everything ``cfg`` names, run the pipeline, release everything."""
    from edgepose.app import sdnotify
    from edgepose.app.config import usable_cores
    from edgepose.app.pipeline import Pipeline, limit_library_threads
    from edgepose.estimators.factory import open_estimator
    from edgepose.render import make_renderer
    from edgepose.sources import make_source

    stopper = _Stopper()
    stopper.install()
    rc = EXIT_OK
    try:
        with ExitStack() as stack:
            outputs = make_outputs(cfg)
            source = make_source(cfg.source, width=cfg.width, height=cfg.height, fps=cfg.fps,
                                 loop=cfg.loop, realtime=cfg.realtime,
                                 allow_truncated=cfg.allow_truncated)
            stopper.source = source
            stack.callback(source.close)
            try:
                source.open()  # a signal meanwhile interrupts it
            except SourceError:
                if not stopper.stopped:
                    raise
            if stopper.stopped:
                return EXIT_OK
            source_fps = getattr(source, "frame_rate", 0.0) or cfg.fps
            for out in outputs:  # a recording plays at the source's own frame rate
                out.set_frame_rate(source_fps)
            threads = cfg.num_threads or usable_cores()
            opener = None
            if cfg.worker:  # the interpreter in a child process: its crash is not ours
                from edgepose.inference.worker import Supervisor

                supervisor = Supervisor(num_threads=threads, invoke_timeout=cfg.invoke_timeout,
                                        load_timeout=cfg.load_timeout)
                stack.callback(supervisor.close)
                opener = supervisor.open_engine
            estimator = open_estimator(cfg.model, cfg.device, decoder=cfg.decoder, schema=cfg.schema,
                                       num_threads=threads, opener=opener)
            limit_library_threads()
            stack.callback(estimator.close)
            _warm_up(estimator, cfg)
            renderer = make_renderer(cfg.display, keypoint_threshold=cfg.keypoint_threshold)
            stack.callback(renderer.close)
            for out in outputs:
                out.open()
                stack.callback(_close_output, out)
            pipeline = Pipeline(source, estimator, renderer, outputs, mirror=cfg.mirror,
                                pose_threshold=cfg.pose_threshold, filters=_filters(cfg),
                                max_frames=cfg.max_frames, heartbeat=sdnotify.Watchdog().ping)
            stopper.pipeline = pipeline
            if stopper.stopped:
                pipeline.stop()
            log.info("running %s on %s (%s) from %s", estimator.name, estimator.device,
                     cfg.model, source.name)
            from edgepose.models.better import better_model_note

            if note := better_model_note(str(cfg.model)):
                log.info("%s", note)
            sdnotify.ready(status=f"{estimator.name} on {estimator.device} from {source.name}")
            try:
                stats = pipeline.run()
                log.info("done: %s", stats.summary())
            except BrokenPipeError:  # `--json - | head`: the reader has all it wanted
                log.info("the reader of the JSON output went away; stopping")
            except Exception as err:  # a failure mid-run, after a good start
                log.error("runtime failure: %s", err)
                log.debug("traceback", exc_info=True)
                rc = EXIT_RUNTIME
            if pipeline.failed_outputs:
                rc = EXIT_RUNTIME
            sdnotify.stopping()
    finally:
        stopper.restore()
        if stopper.signal_at is not None:  # also when stopped before the pipeline ran
            name = signal.Signals(stopper.signum).name if stopper.signum else "?"
            log.info("stopped in %.0f ms after signal %d (%s)",
                     (time.monotonic() - stopper.signal_at) * 1e3, stopper.signum, name)
    return rc


def _close_output(out: Output) -> None:
    try:
        out.close()
    finally:
        log.info("output %s", out.summary())


def main(argv: Sequence[str] | None = None) -> int:
    def go() -> int:  # parsing too: a signal meanwhile is a clean stop
        args = vars(build_parser().parse_args(argv))
        config_file = args.pop("config", None)
        from edgepose.app.config import RunConfig, build_config

        setup_logging(args.get("log_level", RunConfig().log_level))
        cfg = build_config(args, config_file)
        logging.getLogger().setLevel(cfg.log_level)
        return run(cfg)

    return run_cli(PROG, go, interrupted=EXIT_OK, final=argv is None)


if __name__ == "__main__":
    sys.exit(main())
