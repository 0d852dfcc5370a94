"""A pipeline's ``[fallback]`` landmark: what runs when the landmark model cannot be
downloaded (an offline Pi whose cache lacks MoveNet Thunder). The download really fails:
the landmark's manifest points at a port on 127.0.0.1 that nothing listens on."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, FetchError, ModelError
from edgepose.estimators.factory import open_estimator
from edgepose.estimators.topdown import TopDownEstimator
from edgepose.models.manifest import any_manifest_from_dict
from edgepose.models.registry import fetch_model
from tests.conftest import load_rgb, shared_path
from tests.edgepose.estimators.topdown.test_multi import PROPOSER, RecordingOpener

FALLBACK = '[fallback]\nlandmark = "movenet-lightning"\n\n[fallback.params]\ncrop_margin = 1.4\n'


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest folder with ``far-thunder`` (a Thunder whose download is refused) and an
    empty model cache; returns the folder for pipeline manifests."""
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "far-thunder.toml").write_text(
        'name = "far-thunder"\nfile = "far_thunder.tflite"\n'
        f'url = "http://127.0.0.1:{_closed_port()}/far_thunder.tflite"\n'
        'sha256 = "' + "0" * 64 + '"\ninput_size = [256, 256]\ndecoder = "movenet"\nschema = "coco17"\n')
    monkeypatch.setenv("EDGEPOSE_MANIFEST_PATH", str(mdir))
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(tmp_path / "cache"))
    return mdir


def _pipeline(mdir: Path, extra: str = "") -> None:
    (mdir / "mine.toml").write_text(
        f'name = "mine"\nkind = "topdown"\nproposer = "{PROPOSER}"\nlandmark = "far-thunder"\n\n'
        '[params]\ncrop_margin = 1.25\nrefine_below = 0.4\n\n' + extra)


def test_the_fallback_landmark_runs_when_the_landmark_cannot_be_downloaded(
        unreachable: Path, caplog: pytest.LogCaptureFixture) -> None:
    _pipeline(unreachable, FALLBACK)
    opener = RecordingOpener()
    with caplog.at_level(logging.WARNING, "edgepose.estimators.topdown"):
        est = open_estimator("mine", "cpu", opener=opener)
    try:
        assert isinstance(est, TopDownEstimator)
        # the landmark's download failed before any engine opened: the fallback opens instead
        assert [c[0] for c in opener.calls] == [PROPOSER, "movenet-lightning"]
        assert est.landmark_engine.input_size == (192, 192)
        # the fallback's params over the pipeline's: its margin, the pipeline's refine threshold
        assert (est.params.crop_margin, est.params.refine_below) == (1.4, 0.4)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and lines[0].startswith("mine: could not download 'far-thunder' from http://127.0.0.1:")
        assert "ago; next try" not in lines[0]  # tried now, not recalled
        assert lines[0].endswith("running movenet-lightning instead (less precise; `edgepose models fetch "
                                 "far-thunder` once online)")
        image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
        assert len(est.estimate(image).poses) == 2
    finally:
        est.close()


def test_the_default_offline_poses_like_the_fast_pipeline(unreachable: Path) -> None:
    """The shipped default's fallback is the Lightning pipeline it replaced, param for
    param: offline, the default's poses are ``movenet-multipose-fast``'s."""
    (unreachable / "movenet-thunder.toml").write_text(
        (unreachable / "far-thunder.toml").read_text().replace('"far-thunder"', '"movenet-thunder"'))
    image = load_rgb(shared_path("images", "posenet_test_couple.jpg"))
    default, fast = open_estimator("movenet-multipose", "cpu"), open_estimator("movenet-multipose-fast", "cpu")
    try:
        assert isinstance(default, TopDownEstimator) and isinstance(fast, TopDownEstimator)
        assert default.params == fast.params
        a, b = default.estimate(image).poses, fast.estimate(image).poses
        assert len(a) == 2 and np.array_equal(a.xy, b.xy) and np.array_equal(a.pose_scores, b.pose_scores)
    finally:
        default.close()
        fast.close()


def test_without_a_fallback_the_download_error_stands(unreachable: Path) -> None:
    _pipeline(unreachable)
    opener = RecordingOpener()
    with pytest.raises(FetchError, match=r"could not download 'far-thunder' from http://127\.0\.0\.1"):
        open_estimator("mine", "cpu", opener=opener)
    assert [c[0] for c in opener.calls] == [PROPOSER, "far-thunder"]


def test_bad_fallback_params_are_refused_before_anything_loads(unreachable: Path) -> None:
    _pipeline(unreachable, FALLBACK + "refine_below = 2.0\n")
    opener = RecordingOpener()
    with pytest.raises(ConfigError, match=r"mine.toml \[fallback\]: \[params\] refine_below = 2.0; expected "
                                          r"a score from 0 to 1"):
        open_estimator("mine", "cpu", opener=opener)
    assert opener.calls == []


@pytest.mark.parametrize("fallback, match", [
    ("x", r"\[fallback\] must be a table"),
    ({"params": {}}, r"\[fallback\] landmark must be a non-empty string"),
    ({"landmark": "movenet-lightning", "margin": 1.4}, r"unknown key\(s\) margin in \[fallback\]"),
    ({"landmark": "movenet-lightning", "params": 1.4}, r"\[fallback.params\] must be a table"),
])
def test_bad_fallback_tables(fallback: Any, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        any_manifest_from_dict({"kind": "topdown", "name": "p", "proposer": PROPOSER,
                                "landmark": "movenet-thunder", "fallback": fallback}, "x.toml")


def test_fetching_the_pipeline_offline_notes_the_missing_landmark(
        unreachable: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepose.cli.main import main

    _pipeline(unreachable, FALLBACK)
    monkeypatch.delenv("EDGEPOSE_MODEL_PATH", raising=False)
    assert main(["models", "fetch", "mine", "--from", str(shared_path("models"))]) == 0
    out = capsys.readouterr().out
    note = [line for line in out.splitlines() if line.startswith("far-thunder: not fetched")]
    assert len(note) == 1 and note[0].endswith("mine runs movenet-lightning in its place until this succeeds")
    assert any(line.startswith("movenet-lightning: ") for line in out.splitlines())
    # named on its own, the landmark is wanted: its failure is the command's
    assert main(["models", "fetch", "mine", "far-thunder", "--from", str(shared_path("models"))]) == 2


class _Peer:
    """A 127.0.0.1 HTTP peer for the landmark's URL that counts connections and either
    refuses at once (503) or stalls (accepts and never answers)."""

    def __init__(self, stall: bool) -> None:
        self.connections = 0
        self._stall = stall
        self._held: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            if self._stall:
                self._held.append(conn)
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def peer(request: pytest.FixtureRequest, unreachable: Path) -> Iterator[_Peer]:
    p = _Peer(stall=request.param == "stall")
    toml = unreachable / "far-thunder.toml"
    toml.write_text(re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{p.port}", toml.read_text()))
    _pipeline(unreachable, FALLBACK)
    yield p
    p.close()


def _open_and_warn(caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with caplog.at_level(logging.WARNING, "edgepose.estimators.topdown"):
        open_estimator("mine", "cpu", opener=RecordingOpener()).close()
    (line,) = [r.getMessage() for r in caplog.records]
    return line


@pytest.mark.parametrize("peer", ["refuse"], indirect=True)
def test_a_failed_landmark_download_is_not_retried_at_every_start(
        peer: _Peer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = _open_and_warn(caplog)
    assert peer.connections == 1 and "Service Unavailable" in first and "next try" not in first
    mark = tmp_path / "cache" / ".unreachable" / "far-thunder"
    assert "Service Unavailable" in mark.read_text()
    # the next starts go straight to the fallback, saying when it failed and when it is tried
    second = _open_and_warn(caplog)
    assert peer.connections == 1
    assert "Service Unavailable" in second
    assert "(1 min ago; next try in 60 min or by `edgepose models fetch far-thunder`)" in second
    assert second.endswith("running movenet-lightning instead (less precise; `edgepose models fetch "
                           "far-thunder` once online)")
    # doctor says why the start will not try, and what runs meanwhile
    from edgepose.host.doctor import check_models

    (check,) = [c for c in check_models("mine") if c.detail.startswith("model 'far-thunder'")]
    assert check.status == "warn" and check.hint.startswith("not tried at start: could not download")
    assert check.hint.endswith("until then mine runs movenet-lightning in its place")
    # an hour later it is tried again, and so is a clock set back before the failure
    for shift in (-3601, +3600):
        os.utime(mark, (time.time() + shift,) * 2)
        _open_and_warn(caplog)
    assert peer.connections == 3
    # `models fetch` always tries, whatever was remembered
    with pytest.raises(FetchError, match="Service Unavailable"):
        fetch_model("far-thunder", force=True)
    assert peer.connections == 4


def test_a_successful_fetch_forgets_the_failure(unreachable: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepose.models.recall import fetch_or_recall

    monkeypatch.delenv("EDGEPOSE_MODEL_PATH", raising=False)  # only the cache holds models here
    lightning = shared_path("models", "coral", "movenet_single_pose_lightning_ptq.tflite")
    (unreachable / "far-lightning.toml").write_text(
        (Path(__file__).parents[4] / "models" / "movenet-lightning.toml").read_text()
        .replace('name = "movenet-lightning"', 'name = "far-lightning"'))
    mark = tmp_path / "cache" / ".unreachable" / "far-lightning"
    mark.parent.mkdir(parents=True)
    mark.write_text("could not download 'far-lightning' from somewhere: timed out\n")
    with pytest.raises(FetchError, match=r"timed out \(1 min ago; next try in 60 min"):
        fetch_or_recall("far-lightning")
    path = fetch_model("far-lightning", source_dir=lightning.parent, force=True)
    assert not mark.exists() and fetch_or_recall("far-lightning") == path


@pytest.mark.parametrize("peer", ["stall"], indirect=True)
def test_a_stalling_network_holds_the_start_only_for_the_short_timeout(
        peer: _Peer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that accepts and never answers (a black-holed proxy): the landmark's
    download gives up after FALLBACK_TIMEOUT_S, not the 30 s a model without a fallback
    waits (set to 0.5 s here so that the test is quick)."""
    from edgepose.models import recall

    assert recall.FALLBACK_TIMEOUT_S < 30
    monkeypatch.setattr(recall, "FALLBACK_TIMEOUT_S", 0.5)
    line = _open_and_warn(caplog)
    assert peer.connections == 1 and "timed out" in line


def test_a_cache_where_the_failure_cannot_be_written_still_falls_back(
        unreachable: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``.unreachable`` is a file in the way: nothing is remembered, each start tries."""
    _pipeline(unreachable, FALLBACK)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / ".unreachable").write_text("in the way")
    for _ in range(2):
        assert "next try" not in _open_and_warn(caplog)
    assert (tmp_path / "cache" / ".unreachable").read_text() == "in the way"
