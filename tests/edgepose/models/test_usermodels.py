"""`edgepose models add/remove`: a user's model runs by name in `edgepose-run` and
`edgepose detect`; a single-person model runs top-down (one pose per person found)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepose.cli.main import main
from edgepose.core.errors import ModelError
from edgepose.models.manifest import TopDownManifest, write_manifest
from edgepose.models.registry import cache_dir, describe_model, get_manifest, user_manifest_dir
from edgepose.models.usermodels import DEFAULT_PROPOSER, add_model, remove_model
from tests.conftest import REPO, shared_path

CORAL = ("models", "coral")
COUPLE = ("images", "posenet_test_couple.jpg")  # two people


def _movenet_copy(folder: Path, stem: str = "mine", twin: bool = False) -> Path:
    """Coral's MoveNet as a user's file without a manifest (and its Edge TPU build beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    cpu = folder / f"{stem}.tflite"
    shutil.copyfile(shared_path(*CORAL, "movenet_single_pose_lightning_ptq.tflite"), cpu)
    if twin:  # as `compile` lays a pair out: <stem>_edgetpu.tflite + its manifest
        tpu = folder / f"{stem}_edgetpu.tflite"
        shutil.copyfile(shared_path(*CORAL, "movenet_single_pose_lightning_ptq_edgetpu.tflite"), tpu)
        m = get_manifest("movenet-lightning-edgetpu")
        write_manifest(m.with_(name=tpu.stem, file=tpu.name, url="", sha256="", cpu_twin=""),
                       tpu.with_suffix(".toml"))
        cm = get_manifest("movenet-lightning")
        write_manifest(cm.with_(name=stem, file=cpu.name, url="", sha256="", edgetpu_twin=""),
                       cpu.with_suffix(".toml"))
    return cpu


def _people(model: str, tmp: Path, *extra: str) -> tuple[int, subprocess.CompletedProcess[str]]:
    """How many people `edgepose-run --model MODEL` finds in the two-person image."""
    out = tmp / f"{model}.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "edgepose.cli.run", "--model", model, "--source", str(shared_path(*COUPLE)),
         "--display", "none", "--json", str(out), "--log-level", "WARNING", *extra],
        capture_output=True, text=True, timeout=180, cwd=REPO, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text().splitlines()[0])
    return len(record["poses"]), proc


def test_single_person_model_runs_top_down_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _movenet_copy(tmp_path / "runs")
    assert main(["models", "add", str(f), "--decoder", "movenet", "--schema", "coco17", "--name", "mypose"]) == 0
    said = capsys.readouterr().out
    assert "edgepose-run --model mypose" in said
    m = describe_model("mypose")
    assert isinstance(m, TopDownManifest)
    assert (m.proposer, m.landmark, m.schema) == (DEFAULT_PROPOSER, "mypose-landmark", "coco17")
    assert m.source == user_manifest_dir() / "mypose.toml"
    landmark = get_manifest("mypose-landmark")
    copy = cache_dir() / "mypose-landmark.tflite"
    assert landmark.file == copy.name and copy.read_bytes() == f.read_bytes() and len(landmark.sha256) == 64
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert any(line.startswith("mypose ") and "topdown" in line for line in listed.splitlines())
    # top-down finds both people; the same file on the whole frame finds one
    people, _ = _people("mypose", tmp_path)
    assert people == 2
    assert main(["models", "add", str(f), "--decoder", "movenet", "--schema", "coco17",
                 "--name", "mywhole", "--no-topdown"]) == 0
    assert get_manifest("mywhole").file == "mywhole.tflite"
    people, _ = _people("mywhole", tmp_path)
    assert people == 1
    # and `edgepose detect --model NAME`
    capsys.readouterr()
    assert main(["detect", str(shared_path(*COUPLE)), "--model", "mypose", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2 and all(len(r["keypoints"]) == 51 for r in results)


def test_pair_registers_both_builds_and_falls_back_on_auto(tmp_path: Path) -> None:
    f = _movenet_copy(tmp_path / "runs", "sp", twin=True)
    written = add_model(f, topdown=False)
    assert [m.name for m in written] == ["sp-edgetpu", "sp"]
    cpu, tpu = get_manifest("sp"), get_manifest("sp-edgetpu")
    assert (cpu.edgetpu_twin, tpu.cpu_twin, tpu.device) == ("sp-edgetpu", "sp", "edgetpu")
    # the registered Edge TPU build runs its CPU twin here (no libedgetpu), with one line
    people, proc = _people("sp-edgetpu", tmp_path, "--device", "auto")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert people == 1 and len(lines) == 1 and "running sp on the CPU" in lines[0], lines


def test_given_the_edgetpu_file_registers_the_pair_by_the_cpu_stem(tmp_path: Path) -> None:
    f = _movenet_copy(tmp_path / "runs", "sp", twin=True)
    written = add_model(f.with_name("sp_edgetpu.tflite"))
    assert [m.name for m in written] == ["sp-landmark-edgetpu", "sp-landmark", "sp"]


def test_remove_takes_every_part_and_its_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _movenet_copy(tmp_path / "runs", "sp", twin=True)
    add_model(f)
    assert len(list(cache_dir().glob("sp-*.tflite"))) == 2
    assert main(["models", "remove", "sp"]) == 0
    assert sorted(capsys.readouterr().out.split()) == sorted(
        ["removed", "sp", "removed", "sp-landmark", "removed", "sp-landmark-edgetpu"])
    assert not list(user_manifest_dir().glob("*.toml")) and not list(cache_dir().glob("sp*"))
    with pytest.raises(ModelError, match="unknown model 'sp'"):
        describe_model("sp")
    assert get_manifest(DEFAULT_PROPOSER).name == DEFAULT_PROPOSER  # never someone else's model


def test_clash_with_a_user_model_needs_force(tmp_path: Path) -> None:
    f = _movenet_copy(tmp_path / "runs")
    add_model(f, decoder="movenet", schema="coco17")
    before = (user_manifest_dir() / "mine.toml").read_text()
    with pytest.raises(ModelError, match=r"'mine(-landmark)?' is already registered.*--force"):
        add_model(f, decoder="movenet", schema="coco17")
    assert (user_manifest_dir() / "mine.toml").read_text() == before
    other = "posenet-mobilenet-v1-075-353x481"
    add_model(f, decoder="movenet", schema="coco17", proposer=other, force=True)
    m = describe_model("mine")
    assert isinstance(m, TopDownManifest) and m.proposer == other


def test_multi_pose_model_runs_whole_frame_and_refuses_topdown(tmp_path: Path) -> None:
    f = tmp_path / "pn.tflite"
    shutil.copyfile(shared_path(*CORAL, "posenet_mobilenet_v1_075_481_641_quant.tflite"), f)
    with pytest.raises(ModelError, match="--topdown: pn.tflite has decoder 'posenet_multi'"):
        add_model(f, decoder="posenet_multi", schema="coco17", topdown=True)
    with pytest.raises(ModelError, match="--proposer is for top-down"):
        add_model(f, decoder="posenet_multi", schema="coco17", proposer=DEFAULT_PROPOSER)
    assert not user_manifest_dir().exists() or not list(user_manifest_dir().iterdir())
    [m] = add_model(f, decoder="posenet_multi", schema="coco17")
    assert m.name == "pn" and not isinstance(m, TopDownManifest)
    assert remove_model("pn") == ["pn"]


def test_an_mpii_landmark_model_tracks_against_coco_proposals() -> None:
    """A user's MPII-16 model under PoseNet (COCO-17): on video its tracked people are
    compared with the proposals through the joints both schemas share."""
    from edgepose.estimators.base import Job
    from edgepose.estimators.params import TopDownParams
    from edgepose.estimators.proposers import PoseProposer, _in_schema
    from edgepose.inference.engine import open_engine
    from tests.conftest import load_rgb

    image = load_rgb(shared_path(*COUPLE))
    proposer = PoseProposer(open_engine(DEFAULT_PROPOSER, "cpu"), TopDownParams())
    assert len(proposer.propose(Job(image), None, [])) == 2
    found = proposer.runner.engine.infer(image)
    found = found[np.argsort(-found.pose_scores)]
    tracked = _in_schema(found[:1], "mpii16")  # one person already followed, in MPII joints
    assert tracked.schema == "mpii16" and tracked.xy.shape == (1, 16, 2)
    back = _in_schema(tracked, "coco17")
    assert np.array_equal(back.scores[0, :5], np.zeros(5))  # the face: no MPII joint
    np.testing.assert_array_equal(back.xy[0, 5:], found.xy[0, 5:])
    boxes = proposer.propose(Job(image), None, [tracked])
    assert len(boxes) == 1  # only the other person is new
