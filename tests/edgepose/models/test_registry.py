from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgepose.core.errors import FetchError, ModelError
from edgepose.models.manifest import Manifest, load_manifest, manifest_from_dict, write_manifest
from edgepose.models.registry import cache_dir, fetch_model, get_manifest, list_manifests, resolve_model, sha256_file
from tests.conftest import shared_path

MOVENET = "movenet_single_pose_lightning_ptq.tflite"


def test_builtin_manifests_load_and_twins_point_at_each_other() -> None:
    ms = list_manifests()
    assert {"movenet-lightning", "movenet-lightning-edgetpu", "posenet-mobilenet-v1-075-353x481",
            "posenet-mobilenet-v1-075-481x641", "posenet-mobilenet-v1-075-481x641-edgetpu",
            "posenet-mobilenet-v1-075-721x1281"} <= set(ms)
    for name, m in ms.items():
        if m.build:  # built on the dev PC from a pinned float source: no download of its own
            assert m.source_url.startswith("https://") and len(m.source_sha256) == 64 and not m.url
            assert "edgepose-tools" in m.build
            continue
        assert (m.source_url if m.derive else m.url).startswith("https://")
        assert len(m.sha256) == 64 or len(m.git_blob) == 40, name  # git blob: no upstream sha256
        if m.edgetpu_twin:
            assert ms[m.edgetpu_twin].cpu_twin == m.name
        if m.cpu_twin:
            assert ms[m.cpu_twin].edgetpu_twin == m.name


def test_builtin_checksums_match_the_real_files() -> None:
    shared = shared_path("models")
    for name, m in list_manifests().items():
        if m.build:
            continue  # not a download: built on the dev PC (tests/tools/test_quantize_tfjs.py builds one)
        if not any(shared.rglob(m.source_file or m.file)):
            continue  # not in ../shared (Coral's Thunder): tests/edgepose/models/test_thunder.py
        spec = resolve_model(name)
        assert sha256_file(spec.path) == m.sha256, name
        assert spec.manifest.input_size == m.input_size


def test_manifest_round_trip(tmp_path: Path) -> None:
    m = Manifest(name="x", file="x.tflite", input_size=(64, 48), decoder="heatmap", schema="mpii16",
                 mean=(127.5, 127.5, 127.5), std=(128.0,), decoder_params={"flip_shift": True})
    p = write_manifest(m, tmp_path / "x.toml")
    back = load_manifest(p)
    assert back == m and back.source == p


_DERIVED = ('name = "x"\nfile = "x.tflite"\ninput_size = [1, 2]\ndecoder = "movenet"\nschema = "coco17"\n'
            'derive = "strip-posenet-decoder"\n')


@pytest.mark.parametrize("text,message", [
    ('name = "x"\nfile = "x.tflite"\ndecoder = "movenet"\nschema = "coco17"\n', "missing required field(s) input_size"),
    ('name = "x"\nfile = "x.tflite"\ninput_size = [1, 2]\ndecoder = "movenet"\nschema = "coco17"\nsha256 = "abc"\n', "not 64 hex digits"),
    ('name = "x"\nfile = "x.tflite"\ninput_size = [1, 2]\ndecoder = "yolo"\nschema = "coco17"\n', "decoder = 'yolo'"),
    ('name = "x"\nfile = "x.tflite"\ninput_size = [1, 2]\ndecoder = "movenet"\nschema = "coco17"\ncolour = 1\n', "unknown key(s) colour"),
    ('name = "x"\nfile = "x.tflite"\ninput_size = "192"\ndecoder = "movenet"\nschema = "coco17"\n', "input_size must be"),
    ('name = "x\n', "not valid TOML"),
    (_DERIVED + 'source_file = "s.tflite"\nsource_sha256 = "' + "a" * 64 + '"\n', "derive needs sha256"),
    (_DERIVED + 'sha256 = "' + "a" * 64 + '"\n', "derive needs source_file, source_sha256"),
    (_DERIVED.replace("strip-posenet-decoder", "magic"), "derive = 'magic'; expected one of strip-posenet-decoder"),
    (_DERIVED.replace('derive = "strip-posenet-decoder"', 'source_url = "https://x"'), "source_url without derive"),
    (_DERIVED + 'url = "https://x"\nsha256 = "' + "a" * 64 + '"\nsource_file = "s"\nsource_sha256 = "' + "b" * 64
     + '"\n', "a derived model has no url of its own"),
])
def test_bad_manifests(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ModelError) as err:
        load_manifest(p)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "x.toml").mkdir() or d / "x.toml", "is a directory, not a regular file"),
    (lambda d: Path("/dev/zero"), "/dev/zero is a character device, not a regular file"),
    (lambda d: d / "absent.toml", "not found"),
])
def test_unreadable_manifest_files(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ModelError, match=message) as err:
        load_manifest(make(tmp_path))
    assert "\n" not in str(err.value)


def test_a_directory_named_toml_among_manifests_is_skipped(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "notes.toml").mkdir()
    monkeypatch.setenv("EDGEPOSE_MANIFEST_PATH", str(tmp_path))
    assert "movenet-lightning" in list_manifests()


def test_unknown_model_name_lists_known_ones() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'.*movenet-lightning"):
        resolve_model("nope")


def test_model_by_path_needs_sidecar_or_flags(tmp_path: Path) -> None:
    src = shared_path("models", "coral", MOVENET)
    link = tmp_path / "mine.tflite"
    link.symlink_to(src)
    with pytest.raises(ModelError, match="mine.toml.*--decoder"):
        resolve_model(link)
    spec = resolve_model(link, decoder="movenet", schema="coco17")
    assert spec.manifest.input_size == (192, 192) and spec.manifest.name == "mine"
    m = list_manifests()["movenet-lightning"].with_(name="mine-sidecar", sha256="")
    write_manifest(m, tmp_path / "mine.toml")
    assert resolve_model(str(link)).manifest.name == "mine-sidecar"


def test_sha256_mismatch_in_model_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / MOVENET).write_bytes(b"not the model")
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelError, match="does not match manifest 'movenet-lightning'"):
        resolve_model("movenet-lightning")


# --- fetch against a local HTTP server --------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        name = self.path.strip("/").split("/")[-1]
        data = (self.root / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path.startswith("/stall/"):
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            time.sleep(60)  # a mirror that stops sending: the client is killed meanwhile
            return
        if self.path.startswith("/drop/"):
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-transfer
            return
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[str]:
    root = shared_path("models", "coral")
    handler = type("H", (_Handler,), {"root": root})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def local_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str) -> Path:
    """Manifests whose URLs point at the local server; no model path, empty cache."""
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    good = list_manifests()["movenet-lightning"]
    write_manifest(good.with_(name="m-good", url=f"{server}/ok/{MOVENET}"), mdir / "good.toml")
    write_manifest(good.with_(name="m-wrong", url=f"{server}/ok/{MOVENET}", sha256="0" * 64), mdir / "wrong.toml")
    write_manifest(good.with_(name="m-drop", url=f"{server}/drop/{MOVENET}"), mdir / "drop.toml")
    monkeypatch.setenv("EDGEPOSE_MANIFEST_PATH", str(mdir))
    monkeypatch.delenv("EDGEPOSE_MODEL_PATH")
    return mdir


def _cache_files() -> list[Path]:
    d = cache_dir()
    return sorted(d.iterdir()) if d.exists() else []


def test_derived_model_from_its_source_url(local_manifests: Path) -> None:
    """No local source: the source is downloaded (verified), stripped, verified, and only the
    derived file lands in the cache."""
    tpu = list_manifests()["posenet-mobilenet-v1-075-481x641-edgetpu"]
    url = f"{{}}/ok/{tpu.source_file}"
    server = list_manifests()["m-good"].url.split("/ok/")[0]
    write_manifest(tpu.with_(name="d-good", source_url=url.format(server)), local_manifests / "d-good.toml")
    write_manifest(tpu.with_(name="d-drop", source_url=url.format(server).replace("/ok/", "/drop/")),
                   local_manifests / "d-drop.toml")
    with pytest.raises(FetchError, match="could not download 'd-drop'|stopped at"):
        fetch_model("d-drop")
    assert _cache_files() == []
    path = fetch_model("d-good")
    assert _cache_files() == [path] and path.name == tpu.file and sha256_file(path) == tpu.sha256


def test_fetch_good_checksum(local_manifests: Path) -> None:
    path = fetch_model("m-good")
    assert path.parent == cache_dir() and path.name == MOVENET
    assert sha256_file(path) == list_manifests()["m-good"].sha256
    assert _cache_files() == [path]
    assert resolve_model("m-good").path == path.resolve()  # now found in the cache


def test_fetch_wrong_checksum_leaves_nothing(local_manifests: Path) -> None:
    with pytest.raises(FetchError, match="sha256 .* expected 000000000000"):
        fetch_model("m-wrong")
    assert _cache_files() == []


def test_fetch_dropped_connection_leaves_nothing(local_manifests: Path) -> None:
    with pytest.raises(FetchError, match="m-drop"):
        fetch_model("m-drop")
    assert _cache_files() == []


def test_fetch_cli(local_manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgepose.cli.main import main

    assert main(["models", "fetch", "m-wrong"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sha256" in err
    assert main(["models", "fetch", "m-good"]) == 0
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "m-good" in out and str(cache_dir()) in out


def test_fetch_into_an_unwritable_cache_is_one_line(local_manifests: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from edgepose.cli.main import main

    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(not_a_dir))
    assert main(["models", "fetch", "m-good"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write into the model cache" in err
    assert "EDGEPOSE_CACHE_DIR" in err


def test_models_info_takes_a_model_file_with_its_sidecar(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from edgepose.cli.main import main

    link = tmp_path / "mine.tflite"
    link.symlink_to(shared_path("models", "coral", MOVENET))
    assert main(["models", "info", str(link)]) == 2  # no sidecar yet: one line
    assert "mine.toml" in capsys.readouterr().err
    write_manifest(list_manifests()["movenet-lightning"].with_(name="mine", sha256=""),
                   tmp_path / "mine.toml")
    assert main(["models", "info", str(link), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "mine" and info["manifest"] == str(tmp_path / "mine.toml")
    assert info["local_copy"] == str(link.resolve())


def test_fetch_from_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Offline machines: models copied from a folder (USB stick), verified like a download."""
    from edgepose.cli.main import main

    monkeypatch.delenv("EDGEPOSE_MODEL_PATH")
    stick = tmp_path / "stick" / "nested"
    stick.mkdir(parents=True)
    (stick / MOVENET).symlink_to(shared_path("models", "coral", MOVENET))
    path = fetch_model("movenet-lightning", source_dir=tmp_path / "stick")
    assert path.parent == cache_dir() and not path.is_symlink()
    assert sha256_file(path) == list_manifests()["movenet-lightning"].sha256

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MOVENET).write_bytes(b"tampered")
    with pytest.raises(FetchError, match="is 8 bytes .*, the manifest expects 2894840"):
        fetch_model("movenet-lightning", source_dir=bad, force=True)
    with pytest.raises(FetchError, match="no posenet_mobilenet_v1_075_353_481_quant.tflite under"):
        fetch_model("posenet-mobilenet-v1-075-353x481", source_dir=bad)
    assert [p.name for p in cache_dir().iterdir()] == [MOVENET]  # nothing partial left

    assert main(["models", "fetch", "--all", "--from", str(shared_path("models"))]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == len(list_manifests())  # one line each, fetched or skipped
    held = [m for m in list_manifests().values()
            if not m.build and any(shared_path("models").rglob(m.source_file or m.file))]
    assert sorted(p.name for p in cache_dir().iterdir()) == sorted(m.file for m in held)
    built = {m.name for m in list_manifests().values() if m.build}
    absent = sorted(set(list_manifests()) - {m.name for m in held} - built)
    assert [line.split(":")[0] for line in out.splitlines() if ": skipped, no " in line] == absent
    assert "movenet-multipose-lightning-int8: not fetched, built on the dev PC" in out
    assert main(["models", "fetch"]) == 2


def test_pipelines_are_registered_apart_from_model_files() -> None:
    from edgepose.models.registry import describe_model, get_manifest, get_pipeline, list_pipelines

    pipes = list_pipelines()
    assert "movenet-multipose" in pipes and "movenet-multipose" not in list_manifests()
    p = pipes["movenet-multipose"]
    assert (p.kind, p.proposer, p.landmark) == ("topdown", "posenet-mobilenet-v1-075-481x641",
                                                "movenet-thunder")
    # its parts are registered models
    assert {p.proposer, p.landmark, p.fallback["landmark"]} <= set(list_manifests())
    assert describe_model("movenet-multipose") == p == get_pipeline("movenet-multipose")
    assert get_pipeline("movenet-lightning") is None
    with pytest.raises(ModelError, match="is a topdown pipeline of posenet.*not one model file"):
        get_manifest("movenet-multipose")
    with pytest.raises(ModelError, match="unknown model 'nope'; known models:.*movenet-multipose"):
        describe_model("nope")


def test_models_cli_lists_shows_and_fetches_a_pipeline(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from edgepose.cli.main import main

    monkeypatch.delenv("EDGEPOSE_MODEL_PATH")
    assert main(["models", "list"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["movenet-multipose"]]
    assert len(row) == 1 and "topdown: posenet-mobilenet-v1-075-481x641 -> movenet-thunder" in row[0]
    assert "parts not downloaded" in row[0]
    assert main(["models", "info", "movenet-multipose", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "topdown" and info["params"]["crop_margin"] == 1.25
    assert info["fallback"] == {"landmark": "movenet-lightning",
                                "params": {"proposal_interval": 5, "crop_margin": 1.4, "refine_below": 0.3}}
    assert main(["models", "fetch", "movenet-multipose", "--from", str(shared_path("models"))]) == 0
    fetched = capsys.readouterr().out.splitlines()
    # both parts, and the Edge TPU twins a Pi with an accelerator would load
    ms = list_manifests()
    # both parts, the fallback landmark, and the Edge TPU twins a Pi with an accelerator would load
    want = [n for part in ("posenet-mobilenet-v1-075-481x641", "movenet-thunder", "movenet-lightning")
            for n in (part, ms[part].edgetpu_twin) if n]
    assert [line.split(":")[0] for line in fetched] == want and "movenet-lightning-edgetpu" in want
    thunder = [line for line in fetched if line.startswith("movenet-thunder")]
    if not any(shared_path("models").rglob(ms["movenet-thunder"].file)):  # Coral's Thunder is not in ../shared
        assert all(" not fetched (" in line and line.endswith(
            "movenet-multipose runs movenet-lightning in its place until this succeeds") for line in thunder)
    assert main(["models", "list"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["movenet-multipose"]]
    assert "parts downloaded" in row[0] or "parts not downloaded: movenet-thunder" in row[0]


def test_a_killed_fetch_leaves_no_part_file_for_long(local_manifests: Path, server: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`models fetch` SIGKILLed mid-download leaves its .part; the next fetch sees that its
    writer is gone and removes it (and one of a running fetch is left alone)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    write_manifest(list_manifests()["m-good"].with_(name="m-stall", url=f"{server}/stall/{MOVENET}"),
                   local_manifests / "stall.toml")
    proc = subprocess.Popen([sys.executable, "-m", "edgepose.cli.main", "models", "fetch", "m-stall"],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        parts: list[Path] = []
        while time.monotonic() < deadline:
            parts = [p for p in _cache_files() if p.name.endswith(".part") and p.stat().st_size > 0]
            if parts:
                break
            time.sleep(0.05)
        assert parts, "the stalled download never started"
        live = resolve_model("m-good")  # another fetch meanwhile: the live .part is kept
        assert parts[0].exists() and live.path.is_file()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert parts[0].exists()  # what SIGKILL leaves behind
    fetch_model("m-good", force=True)
    assert not [p for p in _cache_files() if p.name.endswith(".part")]


def test_a_built_model_is_not_fetched_but_names_its_build_command() -> None:
    m = get_manifest("movenet-multipose-lightning-int8")
    assert m.build.startswith("edgepose-tools quantize") and "--outputs" in m.build and not m.url
    with pytest.raises(FetchError, match=r"built on the dev PC, not downloaded: run the `build` command in .*"
                                         r"movenet-multipose-lightning-int8.toml"):
        fetch_model("movenet-multipose-lightning-int8")


def test_a_built_model_with_a_url_is_refused() -> None:
    with pytest.raises(ModelError, match=r"a built model \(build = ...\) has neither url nor derive"):
        manifest_from_dict({"name": "x", "file": "x.tflite", "input_size": [1, 1], "decoder": "multipose",
                            "schema": "coco17", "build": "edgepose-tools quantize ...", "url": "https://x"})
