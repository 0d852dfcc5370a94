"""Coral's int8 MoveNet Thunder: fetched from a commit-pinned URL and verified by its git
blob id (upstream publishes no sha256), and the default pipeline that poses people with it.

The git-blob checks run against a 127.0.0.1 HTTP server serving a small file (the
right one and a tampered one of the same size); the pipeline test needs Coral's file in
the model cache or ../shared and skips, saying so, without it."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import FetchError, ModelError
from edgepose.models.download import git_blob_id
from edgepose.models.registry import (
    cache_dir,
    describe_model,
    fetch_model,
    find_model_file,
    get_pipeline,
    list_manifests,
    load_manifest,
    resolve_model,
    write_manifest,
)
from tests.conftest import SHARED, load_rgb

GOOD = b"MoveNet Thunder stand-in\n" * 100
TAMPERED = GOOD[:-2] + b"!\n"  # same size, one byte changed
THUNDER_FILE = "movenet_single_pose_thunder_ptq.tflite"
# where a user's `edgepose models fetch movenet-thunder` put it (read before the tests'
# isolated cache replaces the variable)
USER_CACHE = Path(os.environ.get("EDGEPOSE_CACHE_DIR") or Path.home() / ".cache" / "edgepose" / "models")


def test_git_blob_id_is_what_git_prints(tmp_path: Path) -> None:
    f = tmp_path / "m.tflite"
    f.write_bytes(GOOD)
    git = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True)
    assert git_blob_id(f) == git.stdout.strip()
    f.write_bytes(TAMPERED)
    assert git_blob_id(f) != git.stdout.strip()


class _Server(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        data = GOOD if self.path == "/good" else TAMPERED
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def blob_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """m-good / m-tampered: Thunder's manifest with the blob id of GOOD, served by a local
    server (m-tampered's URL serves TAMPERED); an empty cache, no model path."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    ref = tmp_path / "ref"
    ref.write_bytes(GOOD)
    base = list_manifests()["movenet-thunder"].with_(git_blob=git_blob_id(ref), file="t.tflite",
                                                    edgetpu_twin="")
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    for name in ("good", "tampered"):
        write_manifest(base.with_(name=f"m-{name}", url=f"{url}/{name}"), mdir / f"{name}.toml")
    monkeypatch.setenv("EDGEPOSE_MANIFEST_PATH", str(mdir))
    monkeypatch.delenv("EDGEPOSE_MODEL_PATH")
    yield url
    httpd.shutdown()
    httpd.server_close()


def test_a_download_is_accepted_by_its_git_blob_id(blob_manifests: str) -> None:
    path = fetch_model("m-good", timeout=5)
    assert path.read_bytes() == GOOD and path.parent == cache_dir()
    assert find_model_file(list_manifests()["m-good"]) == path  # verified again when found


def test_a_tampered_download_is_refused_and_nothing_kept(blob_manifests: str) -> None:
    with pytest.raises(FetchError, match=r"has git blob id [0-9a-f]{12}…, expected [0-9a-f]{12}…; the file "
                                         r"was discarded"):
        fetch_model("m-tampered", timeout=5)
    assert not cache_dir().exists() or list(cache_dir().iterdir()) == []


def test_a_tampered_cached_file_is_refused(blob_manifests: str) -> None:
    path = fetch_model("m-good", timeout=5)
    path.write_bytes(TAMPERED)
    with pytest.raises(ModelError, match=r"git blob id .* does not match manifest 'm-good'.*"
                                         r"models fetch --force m-good"):
        find_model_file(list_manifests()["m-good"])


def test_a_git_blob_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text('name = "x"\nfile = "x.tflite"\ninput_size = [2, 2]\ndecoder = "movenet"\n'
                   'schema = "coco17"\ngit_blob = "42330c1b"\n')
    with pytest.raises(ModelError, match=r"x.toml: git_blob '42330c1b' is not a git blob id \(40 hex"):
        load_manifest(bad)


def test_thunder_manifests_and_pipeline_resolve() -> None:
    ms = list_manifests()
    cpu, tpu = ms["movenet-thunder"], ms["movenet-thunder-edgetpu"]
    commit = "/raw/104342d2d3480b3e66203073dac24f4e2dbb4c41/"
    assert (cpu.edgetpu_twin, tpu.cpu_twin) == (tpu.name, cpu.name)
    for m in (cpu, tpu):
        assert m.url.startswith("https://github.com/google-coral/test_data" + commit) and m.url.endswith(m.file)
        assert (m.input_size, m.decoder, m.schema, m.license, m.sha256) == ((256, 256), "movenet", "coco17",
                                                                          "Apache-2.0", "")
    assert (cpu.git_blob, tpu.git_blob) == ("42330c1bcbe4daeb51f3eabd95090d854455d094",
                                            "8c74dfc6ce98dd6e1122f0ef3eeec9847f2d0e21")
    default, fast = get_pipeline("movenet-multipose"), get_pipeline("movenet-multipose-fast")
    assert default is not None and fast is not None and describe_model(fast.name) == fast
    assert (default.landmark, default.fallback["landmark"]) == ("movenet-thunder", "movenet-lightning")
    # offline, the default runs the fast pipeline: same proposer, landmark and params
    assert (fast.proposer, fast.landmark) == (default.proposer, "movenet-lightning")
    assert fast.params == {**default.params, **default.fallback["params"]} != default.params


def test_without_the_file_resolving_thunder_says_how_to_fetch_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPOSE_MODEL_PATH")
    with pytest.raises(ModelError, match=r"model 'movenet-thunder' is not downloaded; run `edgepose models "
                                         r"fetch movenet-thunder`"):
        resolve_model("movenet-thunder", fetch=False)


def _thunder_folder() -> Path:
    for folder in (USER_CACHE, SHARED / "models"):
        if (folder / THUNDER_FILE).is_file() or (folder.is_dir() and any(folder.rglob(THUNDER_FILE))):
            return folder
    pytest.skip(f"Coral's {THUNDER_FILE} is neither in {USER_CACHE} nor under {SHARED / 'models'}: "
                "`edgepose models fetch movenet-thunder` (network) enables this test")


def test_thunder_pipeline_poses_one_person_like_the_ground_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepose.estimators.factory import open_estimator
    from edgepose.estimators.nms import oks

    folder = _thunder_folder()
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", os.pathsep.join([str(folder), str(SHARED / "models")]))
    root = SHARED / "data" / "coco17_dev"
    coco = json.loads((root / "person_keypoints.json").read_text())
    est = open_estimator("movenet-multipose", "cpu")
    try:
        scores = []
        for im in coco["images"]:
            anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
            if len(anns) != 1:
                continue
            gt = np.array(anns[0]["keypoints"], np.float64).reshape(17, 3)
            poses = est.estimate(load_rgb(root / "images" / im["file_name"])).poses
            top = int(np.argmax(poses.pose_scores))
            scores.append(oks(poses.xy[top], gt[:, :2], anns[0]["area"], gt[:, 2] > 0))
    finally:
        est.close()
    # the int8 Thunder stand-in built by the tools scores 0.84 over both sets' one-person images
    assert scores and float(np.mean(scores)) >= 0.7, scores


@pytest.mark.parametrize("model", ["movenet-multipose-fast", "movenet-lightning"])
def test_run_says_once_when_thunder_is_available(model: str, tmp_path: Path) -> None:
    """The Lightning pipeline says in one line that the default (Thunder) is more precise;
    other models do not."""
    import sys

    from tests.conftest import REPO

    image = SHARED / "images" / "posenet_test_couple.jpg"
    if not image.is_file():
        pytest.skip(f"{image} not found: set EDGEPOSE_SHARED to the shared data folder")
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "edgepose.cli.run", "--source", str(image), "--model", model,
                           "--max-frames", "1", "--display", "none", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "a more precise model is available" in line]
    if model == "movenet-multipose-fast":
        assert len(notes) == 1 and notes[0].startswith("INFO ")
        assert "`edgepose models fetch movenet-multipose` (official downloads), then --model " \
               "movenet-multipose (" in notes[0]
    else:
        assert notes == []
    assert len(out.read_text().splitlines()) == 1


def test_the_note_drops_the_fetch_step_once_thunder_is_there(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepose.models.better import better_model_note

    models, mdir = tmp_path / "models", tmp_path / "manifests"
    models.mkdir()
    mdir.mkdir()
    (models / THUNDER_FILE).write_bytes(GOOD)  # a stand-in verified by its own blob id
    write_manifest(list_manifests()["movenet-thunder"].with_(git_blob=git_blob_id(models / THUNDER_FILE)),
                   mdir / "movenet-thunder.toml")
    assert "`edgepose models fetch movenet-multipose`" in str(better_model_note("movenet-multipose-fast"))
    monkeypatch.setenv("EDGEPOSE_MANIFEST_PATH", str(mdir))
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", os.pathsep.join([str(models), str(SHARED / "models")]))
    note = better_model_note("movenet-multipose-fast")
    assert note is not None and note.startswith("a more precise model is available: --model "
                                                "movenet-multipose (")
    assert better_model_note("movenet-lightning") is None
