"""``--serve`` under load, and its footprint, measured in one run.

A camera-paced pipeline (a real video played at its own frame rate, looped; MoveNet
Lightning on the CPU; no screen) feeds a ``ServeOutput`` on 127.0.0.1:

1. no clients, for ``--seconds`` (60): the reference frames/s;
2. 20 clients of the page's WebSocket (``/live``: record + JPEG per frame) reading all
   they get, plus one client that connects and never reads, for the same time: the
   pipeline's frames/s again. Printed: both rates and their ratio (target >= 0.95).
   The clients run in a child process at nice 10, standing in for viewers on other
   machines (bounded: they stop after their round); the two cases alternate in
   ``--rounds`` rounds so that the shared machine's load hits both alike;
3. (first) one viewer for ``--footprint-seconds`` (20), the server fed the video's real
   frames and poses at 30 frames/s: the CPU time of the serve threads per frame (the
   JPEG/record thread and the HTTP event loop, from /proc) and the RSS growth from
   before aiohttp is imported.

    .venv/bin/python benchmarks/bench_serve.py [--seconds 60] [--clients 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._common import require_shared  # noqa: E402

VIDEO = "sports2d_demo.mp4"  # 1768x994 at 30 fps
TICKS = os.sysconf("SC_CLK_TCK")
ENCODER, HTTP = ("edgepose-serve",), ("edgepose-serve-http",)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def thread_cpu_s(names: tuple[str, ...]) -> float:
    """CPU time (user + system) so far of this process's threads with these names."""
    total = 0
    for t in threading.enumerate():
        if t.name in names and t.native_id is not None:
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def real_results(estimator, video: Path, count: int) -> list:
    """The first ``count`` frames of ``video`` with their poses, as the pipeline hands them out."""
    from edgepose.outputs.base import FrameResult
    from edgepose.outputs.records import frame_record
    from edgepose.sources import open_source

    out = []
    with open_source(str(video)) as source:
        for frame in source:
            est = estimator.estimate(frame.image, frame.timestamp)
            record = frame_record(frame, est.poses, 10.0, device=est.device, timings=est.timings,
                                  invokes=est.invokes)
            out.append(FrameResult(record, frame.image, est.poses))
            if len(out) == count:
                break
    return out


def run_pipeline(estimator, serve, seconds: float, video: Path) -> float:
    """Frames per second processed by a camera-paced pipeline feeding ``serve`` (or none)."""
    from edgepose.app.pipeline import Pipeline
    from edgepose.sources import open_source

    with open_source(str(video), loop=True, realtime=True) as source:
        pipe = Pipeline(source, estimator, None, [serve] if serve else [], log_every=0)
        threading.Timer(seconds, pipe.stop).start()
        t0 = time.monotonic()
        stats = pipe.run()
        elapsed = time.monotonic() - t0
    return stats.processed / elapsed


CLIENTS = r"""
import asyncio, os, socket, sys, time
import aiohttp

async def reader(session, url, counts, i, until):
    async with session.ws_connect(url, max_msg_size=0) as ws:
        while time.monotonic() < until:
            try:
                msg = await asyncio.wait_for(ws.receive(), timeout=until - time.monotonic())
            except asyncio.TimeoutError:
                break
            if msg.type == aiohttp.WSMsgType.BINARY:
                counts[i] += 1
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break

async def main(port, n, seconds):
    os.nice(10)  # stand-ins for viewers on other machines: they must not take the pipeline's CPU
    until = time.monotonic() + seconds
    stuck = socket.create_connection(("127.0.0.1", port))  # connects, never reads
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    counts = [0] * n
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(reader(session, f"http://127.0.0.1:{port}/live", counts, i, until)
                               for i in range(n)))
    stuck.close()
    print(" ".join(map(str, counts)), flush=True)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="length of each loaded run (s)")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rounds", type=int, default=4, help="alternated rounds the seconds are split into")
    p.add_argument("--footprint-seconds", type=float, default=20.0)
    args = p.parse_args(argv)
    shared = require_shared()
    video = shared / "videos" / VIDEO
    from edgepose.estimators.factory import open_estimator
    from edgepose.outputs.serve import ServeOutput

    estimator = open_estimator("movenet-lightning", "cpu")  # one for every run

    # 3 first, before aiohttp is imported: the server and one viewer, fed real frames with
    # their poses at the video's rate (no pipeline, so its allocations do not count)
    results = real_results(estimator, video, 60)
    rss0 = rss_mb()
    serve = ServeOutput(f"127.0.0.1:{free_port()}")
    serve.open()
    viewer = subprocess.Popen([sys.executable, "-c", CLIENTS, str(serve.port), "1",
                               str(args.footprint_seconds + 5)], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    cpu0 = thread_cpu_s(ENCODER + HTTP)
    count = int(args.footprint_seconds * 30)
    t0 = time.monotonic()
    for i in range(count):
        serve.write(results[i % len(results)])
        time.sleep(max(0.0, t0 + (i + 1) / 30 - time.monotonic()))
    time.sleep(0.2)
    cpu = thread_cpu_s(ENCODER + HTTP) - cpu0
    rss1 = rss_mb()
    viewer.kill()
    viewer.wait()
    pictures = serve.written
    serve.close()
    print(f"footprint, one viewer, 30 frames/s: {cpu / count * 1e3:.2f} ms CPU per frame in the "
          f"serve threads ({pictures} of {count} frames encoded and sent); RSS +{rss1 - rss0:.1f} MB "
          "(aiohttp imported, server, buffers)")

    serve = ServeOutput(f"127.0.0.1:{free_port()}")
    serve.open()
    part = args.seconds / args.rounds
    alone, loaded, counts, enc, http, frames = [], [], [], 0.0, 0.0, 0
    for _ in range(args.rounds):  # alternated, so that the machine's load hits both alike
        alone.append(run_pipeline(estimator, serve, part, video))
        clients = subprocess.Popen([sys.executable, "-c", CLIENTS, str(serve.port), str(args.clients),
                                    str(part + 3)], stdout=subprocess.PIPE, text=True)
        time.sleep(2.0)  # every client connected
        enc0, http0, frames0 = thread_cpu_s(ENCODER), thread_cpu_s(HTTP), serve.frames
        loaded.append(run_pipeline(estimator, serve, part, video))
        enc, http = enc + thread_cpu_s(ENCODER) - enc0, http + thread_cpu_s(HTTP) - http0
        frames += serve.frames - frames0
        out, _ = clients.communicate(timeout=part + 30)
        counts += [int(c) for c in out.split()]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    serve.close()
    estimator.close()
    enc_ms, http_ms = enc / max(frames, 1) * 1e3, http / max(frames, 1) * 1e3
    alone_fps, loaded_fps = statistics.median(alone), statistics.median(loaded)
    print(f"pipeline alone:                      {alone_fps:.2f} frames/s (median of {args.rounds} rounds)")
    print(f"with {args.clients} /live clients + 1 never reading: {loaded_fps:.2f} frames/s")
    print(f"ratio {loaded_fps / alone_fps:.3f} (target >= 0.95); pictures per client per round of "
          f"{part:g} s: median {statistics.median(counts):.0f}, min {min(counts)}")
    print(f"serve threads with {args.clients} clients, CPU per frame: {enc_ms:.2f} ms record + JPEG, "
          f"{http_ms:.2f} ms HTTP loop; the client "
          f"processes (on the same 2 cores here): {usage.ru_utime + usage.ru_stime:.1f} s CPU")
    return 0


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    sys.exit(main())
