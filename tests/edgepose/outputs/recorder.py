"""A recording run in its own process, for the tests that kill it or fill its disk.

``python -m tests.edgepose.outputs.recorder OUT.mp4 VIDEO [--frames N] [--realtime]
[--fsize-limit BYTES] [--log-level L]``: reads VIDEO (looping), finds poses with the
real MoveNet on the CPU and writes each frame to a ``RecordingOutput``, printing
``frame I`` after each write, then ``error: ...`` if the output failed and
``closed: N`` with the frames the file holds.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys

from edgepose.cli.common import setup_logging
from edgepose.core.errors import OutputError
from edgepose.inference.engine import open_engine
from edgepose.outputs.base import FrameResult
from edgepose.outputs.recording import RecordingOutput
from edgepose.outputs.records import frame_record
from edgepose.sources import open_source


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("video")
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--realtime", action="store_true")
    p.add_argument("--fsize-limit", type=int, default=0,
                   help="RLIMIT_FSIZE: writes past it fail with EFBIG (a full disk stand-in)")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args()
    setup_logging(args.log_level)
    if args.fsize_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a dead process
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, args.fsize_limit))
    source = open_source(args.video, loop=True, realtime=args.realtime)
    out = RecordingOutput(args.out, fps=source.frame_rate)  # type: ignore[attr-defined]
    out.check()
    out.open()
    with open_engine("movenet-lightning", "cpu") as engine:
        for frame in source:
            if frame.index >= args.frames:
                break
            poses = engine.infer(frame.image)
            try:
                out.write(FrameResult(frame_record(frame, poses, 0.0), frame.image, poses))
            except OutputError as err:
                print(f"error: {err}", flush=True)
                break
            print(f"frame {frame.index}", flush=True)
    source.close()
    try:
        out.close()
    except OutputError as err:
        print(f"error: {err}", flush=True)
    print(f"closed: {out.written}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
