"""Issue 15's second wave, outputs and peers: files locked per file (not per spelling of
their path), one destination per output, recordings that cannot start, compilers that
exit 0 with a bad output, downloads that trickle, never end or run long, misbehaving
network peers, blank tokens, bad data for the dev tools, and SIGINT/SIGTERM in every
CLI. Each row runs the real CLI in a subprocess: exit code, exactly one stderr line, no
traceback, and the files afterwards."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.faults.harness import Case, assert_one_line, hold_output, on_release, release, run_case

OLD = '{"frame": 0, "old": true}\n' * 20
OLD_MP4 = b"an earlier recording" * 500
# the Lightning pipeline: the default would first try to download Thunder (offline here: one
# more warning line) and these rows are about faults, not models
RUN = ["edgepose-run", "--source", "{video}", "--display", "none", "--device", "cpu",
       "--model", "movenet-multipose-fast", "--log-level", "WARNING"]
POSENET = "models/coral/posenet_mobilenet_v1_075_481_641_quant.tflite"


# ---- setups and checks ---------------------------------------------------------------

def _linked_and_held(tmp: Path) -> None:
    """held.jsonl (old records), a hard link and a symlink to it; a writer holds it."""
    (tmp / "held.jsonl").write_text(OLD)
    os.link(tmp / "held.jsonl", tmp / "hard.jsonl")
    (tmp / "soft.jsonl").symlink_to(tmp / "held.jsonl")
    hold_output(tmp / "held.jsonl")


def _new_file_held(tmp: Path) -> None:
    """A writer holds new.jsonl before it exists; soft.jsonl points at it."""
    (tmp / "soft.jsonl").symlink_to(tmp / "new.jsonl")
    hold_output(tmp / "new.jsonl")


def _old_untouched(tmp: Path) -> None:
    assert (tmp / "held.jsonl").read_text() == OLD


def _old_and_link(tmp: Path) -> None:
    (tmp / "old.jsonl").write_text(OLD)
    os.link(tmp / "old.jsonl", tmp / "other.jsonl")


def _strip_and_old_mp4(tmp: Path) -> None:
    """A 20000x2 image (40,000 pixels: no image limit refuses it, no H.264 encoder takes
    it) and an earlier recording."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((2, 20000, 3), 128, np.uint8)).save(tmp / "strip.png")
    (tmp / "old.mp4").write_bytes(OLD_MP4)


def _mp4_untouched(tmp: Path) -> None:
    assert (tmp / "old.mp4").read_bytes() == OLD_MP4
    assert not list(tmp.glob(".*.lock"))


def _fake_compiler(tmp: Path) -> None:
    fake = Path(__file__).resolve().parents[1] / "tools" / "fake_edgetpu_compiler.py"
    (tmp / "bin").mkdir()
    exe = tmp / "bin" / "edgetpu_compiler"
    exe.write_text(f"#!{sys.executable}\n" + fake.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    (tmp / "out").mkdir()


def _out_empty(tmp: Path) -> None:
    assert list((tmp / "out").iterdir()) == []


DATA = hashlib.sha256(b"edgepose").digest() * 1024  # 32 KiB standing in for a model


class _Mirror(http.server.BaseHTTPRequestHandler):
    """/trickle: a byte every 0.25 s; /endless: zeros forever; /liar: announces 2x."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        if self.path == "/trickle":
            self.send_header("Content-Length", str(len(DATA)))
        elif self.path == "/liar":
            self.send_header("Content-Length", str(2 * len(DATA)))
        self.end_headers()
        try:
            if self.path == "/trickle":
                for i in range(len(DATA)):
                    self.wfile.write(DATA[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.25)
            elif self.path == "/endless":
                for _ in range(100_000):
                    self.wfile.write(b"\0" * 65536)
            else:
                self.wfile.write(DATA)
        except OSError:
            pass


def _mirror(tmp: Path) -> None:
    """A 127.0.0.1 mirror and manifests m-trickle, m-endless, m-liar (size and sha256 of
    DATA) in tmp/manifests; an empty cache in tmp/cache."""
    from edgepose.models.registry import list_manifests, write_manifest

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    on_release(httpd.shutdown)
    on_release(httpd.server_close)
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    (tmp / "manifests").mkdir()
    base = list_manifests()["movenet-lightning"].with_(
        sha256=hashlib.sha256(DATA).hexdigest(), size=len(DATA), file="m.tflite", edgetpu_twin="")
    for name in ("trickle", "endless", "liar"):
        write_manifest(base.with_(name=f"m-{name}", url=f"{url}/{name}"), tmp / "manifests" / f"{name}.toml")


def _cache_empty(tmp: Path) -> None:
    cache = tmp / "cache"
    assert not cache.exists() or list(cache.iterdir()) == [], list(cache.iterdir())


FETCH_ENV = {"EDGEPOSE_MANIFEST_PATH": "{tmp}/manifests", "EDGEPOSE_CACHE_DIR": "{tmp}/cache"}


def _garbage_peer(tmp: Path) -> None:
    """A TCP server on 127.0.0.1 answering every WebSocket upgrade with random bytes;
    its port goes to tmp/port for the URL."""
    server = socket.create_server(("127.0.0.1", 0))
    on_release(server.close)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(os.urandom(512))
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    (tmp / "port").write_text(str(server.getsockname()[1]))


def _coco(tmp: Path, images: list | None = None, annotations: list | None = None, nan: bool = False) -> None:
    data = json.loads((SHARED / "data" / "coco17_dev" / "person_keypoints.json").read_text())
    if images is not None:
        data["images"] = images
    if annotations is not None:
        data["annotations"] = annotations
    if nan:
        data["annotations"][0]["keypoints"] = [float("nan")] * 51
    (tmp / "ann.json").write_text(json.dumps(data))


def _coco_unlabelled(tmp: Path) -> None:
    data = json.loads((SHARED / "data" / "coco17_dev" / "person_keypoints.json").read_text())
    _coco(tmp, annotations=[dict(a, keypoints=[0] * 51, num_keypoints=0) for a in data["annotations"]])


def _mpii(change: str):
    def setup(tmp: Path) -> None:
        records = json.loads((SHARED / "data" / "mpii_sample" / "test_mpii.json").read_text())
        if change == "inf-scale":
            records[1]["scale"] = float("inf")
        elif change == "nan-joint":
            records[2]["joints"][3] = [float("nan"), 5.0]
        else:
            records[0]["center"] = [float("-inf"), 10.0]
        (tmp / "mpii.json").write_text(json.dumps(records))
    return setup


def _absent(*names: str):
    def check(tmp: Path) -> None:
        for n in names:
            assert not (tmp / n).exists(), n
    return check


COMPILE = ["edgepose-tools", "compile", f"{{shared}}/{POSENET}", "--out-dir", "{tmp}/out"]
EVAL = ["edgepose-tools", "evaluate", "--model", "movenet-lightning", "--coco", "{tmp}/ann.json",
        "--images", "{shared}/data/coco17_dev/images"]
DATASET = ["edgepose-tools", "dataset", "--format", "mpii", "--annotations", "{tmp}/mpii.json",
           "--images", "{shared}/data/mpii_sample", "--out", "{tmp}/shards", "--no-progress"]

CASES = [
    # ---- outputs: one writer per file, one output per destination
    Case("out-second-writer-hard-link", RUN + ["--json", "{tmp}/hard.jsonl"], 2,
         r"hard.jsonl is being written by another process \(PID \d+\); stop it", setup=_linked_and_held,
         check=_old_untouched),
    Case("out-second-writer-symlink", RUN + ["--json", "{tmp}/soft.jsonl"], 2,
         r"soft.jsonl is being written by another process \(PID \d+\)", setup=_linked_and_held,
         check=_old_untouched),
    Case("out-second-writer-symlink-to-new-file", RUN + ["--json", "{tmp}/soft.jsonl"], 2,
         r"soft.jsonl is being written by another process \(PID \d+\)", setup=_new_file_held,
         check=_absent("new.jsonl")),
    Case("out-stdout-twice", RUN + ["--json", "-", "--output", "-"], 2,
         r"--json - and --output - both write to stdout; one destination serves one output"),
    Case("out-dev-stdout-and-dash", RUN + ["--json", "/dev/stdout", "--output", "-"], 2,
         r"both write to stdout"),
    Case("out-hard-linked-json-and-output", RUN + ["--json", "{tmp}/old.jsonl", "--output", "{tmp}/other.jsonl"],
         2, r"both write to the same file", setup=_old_and_link,
         check=lambda tmp: (tmp / "old.jsonl").read_text() == OLD or pytest.fail("old.jsonl changed")),
    Case("out-recording-cannot-start-keeps-old-file",
         ["edgepose-run", "--source", "{tmp}/strip.png", "--display", "none", "--device", "cpu",
          "--model", "movenet-multipose-fast", "--log-level", "WARNING", "--record", "{tmp}/old.mp4"], 1,
         r"old.mp4: the recording could not start: \w+ cannot encode 20000x2 frames .*the file was left as it was",
         setup=_strip_and_old_mp4, check=_mp4_untouched),
    # ---- edgepose-tools compile: exit 0 is not success without an Edge TPU model
    *[Case(f"compile-exit-0-{mode}", COMPILE, 2, rf"exited 0 but wrote {what} as .*_edgetpu.tflite \(removed\)",
           setup=_fake_compiler, check=_out_empty, needs=(POSENET,),
           env={"PATH": "{tmp}/bin:" + os.environ.get("PATH", ""), "FAKE_EDGETPU_MODE": mode})
      for mode, what in (("empty", r"an empty file \(0 bytes\)"),
                         ("garbage", "29 bytes that are not a TFLite model"),
                         ("no-custom-op", "a TFLite model without the edgetpu-custom-op"))],
    # ---- edgepose models fetch: bounded in time and size
    Case("fetch-trickle-overall-deadline", ["edgepose", "models", "fetch", "m-trickle", "--timeout", "1"], 2,
         r"too slow: \d+ of 32768 bytes in \d+ s \(at least 16 KiB/s", setup=_mirror, check=_cache_empty,
         env=FETCH_ENV),
    Case("fetch-endless-stops-at-size", ["edgepose", "models", "fetch", "m-endless", "--timeout", "2"], 2,
         r"sent more than the 32768 bytes expected; stopped there and kept nothing", setup=_mirror,
         check=_cache_empty, env=FETCH_ENV),
    Case("fetch-wrong-content-length", ["edgepose", "models", "fetch", "m-liar", "--timeout", "2"], 2,
         r"is 65536 bytes \(Content-Length\), the manifest expects 32768", setup=_mirror,
         check=_cache_empty, env=FETCH_ENV),
    Case("fetch-timeout-nan", ["edgepose", "models", "fetch", "m-liar", "--timeout", "nan"], 2,
         r"--timeout: nan must be between 0.1 and 3600 seconds"),
    # ---- network peers and the live view's token
    Case("ws-peer-answers-garbage", RUN + ["--max-frames", "40", "--output", "ws://127.0.0.1:{port}/poses"], 0,
         r"WARNING edgepose.outputs.background: ws://127.0.0.1:\d+/poses: .*; the run goes on, retrying",
         setup=_garbage_peer),
    Case("mqtt-topic-70000-characters", RUN + ["--output", "mqtt://127.0.0.1/" + "t" * 70_000], 2,
         r"is 70007 bytes of UTF-8, MQTT allows at most 65535"),
    Case("serve-blank-token", RUN + ["--serve", "0.0.0.0:18080", "--serve-token", "   "], 2,
         r"--serve-token is blank \(3 space\(s\)\): a blank token is no token; give at least 16 characters"),
    Case("serve-short-token", RUN + ["--serve", "0.0.0.0:18080", "--serve-token", "abc12"], 2,
         r"--serve-token is 5 characters, too short .* at least 16 characters"),
    Case("serve-blank-token-config", RUN + ["--config", "{tmp}/c.toml"], 2, r"--serve-token is blank",
         setup=lambda tmp: (tmp / "c.toml").write_text('serve = "0.0.0.0:18080"\nserve_token = " "\n') and None),
    # ---- dev tools: bad data is one line, never a NaN table or NaN records
    Case("evaluate-empty-annotations", EVAL, 2, r"nothing to score \(0 image\(s\), 0 annotation\(s\)",
         setup=lambda tmp: _coco(tmp, images=[], annotations=[]), needs=("data/coco17_dev",)),
    Case("evaluate-no-annotations", EVAL, 2, r"nothing to score \(8 image\(s\), 0 annotation\(s\)",
         setup=lambda tmp: _coco(tmp, annotations=[]), needs=("data/coco17_dev",)),
    Case("evaluate-unlabelled-annotations", EVAL, 2, r"0 person\(s\) with labelled keypoints",
         setup=_coco_unlabelled, needs=("data/coco17_dev",)),
    Case("evaluate-nan-keypoints", EVAL, 2, r"annotation 0 \(id \d+\) has keypoints or a bbox that are not finite",
         setup=lambda tmp: _coco(tmp, nan=True), needs=("data/coco17_dev",)),
    Case("evaluate-missing-annotations", EVAL, 2, r"ann.json: annotation file not found",
         needs=("data/coco17_dev",)),
    Case("dataset-mpii-inf-scale", DATASET, 2, r"record 1: scale inf is not a person's size",
         setup=_mpii("inf-scale"), check=_absent("shards"), needs=("data/mpii_sample",)),
    Case("dataset-mpii-nan-joint", DATASET, 2, r"record 2: joints holds NaN or infinity",
         setup=_mpii("nan-joint"), check=_absent("shards"), needs=("data/mpii_sample",)),
    Case("dataset-mpii-inf-center", DATASET, 2, r"record 0: center holds NaN or infinity",
         setup=_mpii("inf-center"), check=_absent("shards"), needs=("data/mpii_sample",)),
]


@pytest.fixture(autouse=True)
def _stop_what_setups_started() -> Iterator[None]:
    yield
    release()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} not found: set EDGEPOSE_SHARED")
    missing = [n for n in case.needs if not (SHARED / n).exists()]
    if missing:
        pytest.skip(f"{missing[0]} not under {SHARED}")
    if case.setup is not None:
        case.setup(tmp_path)
    if (tmp_path / "port").exists():  # a peer started by the setup
        case = Case(case.id, [a.replace("{port}", (tmp_path / "port").read_text()) for a in case.argv],
                    case.code, case.match, check=case.check, env=case.env)
    proc = run_case(case, tmp_path)
    assert_one_line(case, proc)
    if case.check is not None:
        case.check(tmp_path)


def test_the_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
