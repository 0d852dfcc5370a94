"""Evaluator on the real COCO dev set and MPII sample, through the runtime engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from tools.cli import main
from tools.metrics import pckh


def test_pckh_counts_only_visible_joints() -> None:
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    pred[0, 0] = [6.0, 0.0]  # beyond 0.5 x head size 10
    vis = np.ones((2, 16), bool)
    vis[1, 0] = False
    overall, per_joint = pckh(pred, gt, vis, [10.0, 10.0])
    assert overall == pytest.approx(30 / 31) and per_joint[0] == 0.0 and per_joint[1] == 1.0


def test_movenet_int8_ap_on_coco_dev(capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_path("data", "coco17_dev")
    assert main(["evaluate", "--model", "movenet-lightning", "--coco", str(data / "person_keypoints.json"),
                 "--images", str(data / "images"), "--json"]) == 0
    (m,) = json.loads(capsys.readouterr().out)["models"]
    assert m["detections"] == 19  # one pose per ground-truth person
    assert 0.3 < m["AP"] <= 1.0 and m["AP50"] >= m["AP"]


def test_movenet_pckh_on_mpii_sample(capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_path("data", "mpii_sample")
    assert main(["evaluate", "--model", "movenet-lightning", "--mpii", str(data / "test_mpii.json"),
                 "--images", str(data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    (m,) = res["models"]
    # COCO-17 MoveNet is scored on the 12 limb joints MPII shares with it; it finds these 5 people.
    assert m["model"] == "movenet-lightning" and m["joints_scored"] == 12
    assert 0.8 < m["PCKh@0.5"] <= 1.0 and res["head_size"] == "head-top to neck distance"


SHARED_FILES = {"@mpii": ("data", "mpii_sample", "test_mpii.json"), "@mpii_dir": ("data", "mpii_sample"),
                "@coco_dir": ("data", "coco17_dev")}


@pytest.mark.parametrize("args, match", [
    (["--coco", "missing.json"], "annotation file not found"),
    (["--mpii", "bad_joints.json"], "expected 16"),
    (["--coco", "@mpii"], "not COCO keypoints JSON"),  # a list, which pycocotools only asserts on
    (["--mpii", "@mpii_dir"], "is a folder"),
    (["--coco", "@coco_dir"], "is a folder"),
    (["--mpii", "no_image.json"], "missing from"),
])
def test_bad_annotations_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str) -> None:
    (tmp_path / "bad_joints.json").write_text(json.dumps([{"joints": [[0, 0]] * 14, "joints_vis": [1] * 14,
                                                           "center": [1, 1], "scale": 1.0, "image": "x.jpg"}]))
    (tmp_path / "no_image.json").write_text(json.dumps([{"joints": [[0, 0]] * 16, "joints_vis": [1] * 16,
                                                         "center": [1, 1], "scale": 1.0, "image": "x.jpg"}]))
    where = shared_path(*SHARED_FILES[args[1]]) if args[1] in SHARED_FILES else tmp_path / args[1]
    assert main(["evaluate", "--model", "movenet-lightning", args[0], str(where), "--images", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


@pytest.mark.slow
def test_float_vs_int8_agreement_of_a_tool_quantized_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorflow")
    from edgepose.models.manifest import Manifest, write_manifest
    from tests.tools.tiny_models import heatmap_model
    from tools.quantize import quantize

    model = heatmap_model(64)
    keras_path = tmp_path / "tiny.keras"
    model.save(keras_path)
    manifest = Manifest(name="tiny", file="tiny.tflite", input_size=(64, 64), decoder="heatmap", schema="coco17")
    write_manifest(manifest, keras_path.with_suffix(".toml"))
    q = quantize(keras_path, shared_path("images"), tmp_path / "tiny_int8.tflite", num_samples=6, held_out=2,
                 progress=False)
    float_path = q.float_model_path  # written by the quantizer, with its manifest
    assert float_path == tmp_path / "tiny_float.tflite" and float_path.with_suffix(".toml").is_file()
    data = shared_path("data", "coco17_dev")
    assert main(["evaluate", "--model", str(float_path), "--model2", str(q.model_path), "--coco",
                 str(data / "person_keypoints.json"), "--images", str(data / "images"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in res["models"]] == ["tiny_float", "tiny_int8"]
    assert 0.0 <= res["agreement_pck@0.05"] <= 1.0


def _coco(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    data = shared_path("data", "coco17_dev")
    assert main(["evaluate", *args, "--coco", str(data / "person_keypoints.json"),
                 "--images", str(data / "images"), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["models"]


def test_default_multi_person_model_ap_on_coco_dev(capsys: pytest.CaptureFixture[str]) -> None:
    """Whole images through the default (top-down) model: AP >= 0.60, where PoseNet alone
    reaches 0.489 and MoveNet on the whole frame 0.152 (both measured here too)."""
    top, posenet = _coco(capsys, "--model2", "posenet-mobilenet-v1-075-481x641")
    assert top["model"] == "movenet-multipose" and top["AP"] >= 0.60
    assert top["AP"] > posenet["AP"] + 0.1 and top["detections"] >= 15
    costs = top["costs"]  # one proposer invoke per image, then one landmark invoke per person
    assert costs["invokes_per_input"] >= 2 and costs["proposer_invoke_ms"] > 0
    assert costs["landmark_invoke_ms"] > 0 and costs["decode_ms"] > 0
    assert posenet["costs"]["invokes_per_input"] == 1.0


def test_movenet_on_whole_images_is_what_the_default_replaced(capsys: pytest.CaptureFixture[str]) -> None:
    (movenet,) = _coco(capsys, "--model", "movenet-lightning", "--full-images")
    assert movenet["AP"] < 0.4  # one pose per image, on images of up to five people


def test_on_one_person_images_the_default_loses_nothing(tmp_path: Path) -> None:
    """Mean OKS on the coco17_dev images showing one person: the default model against
    MoveNet Lightning run once on the whole frame (what the default was before)."""
    from edgepose.estimators.factory import open_estimator
    from tools.evaluate import evaluate_coco

    data = shared_path("data", "coco17_dev")
    coco = json.loads((data / "person_keypoints.json").read_text())
    counts = {im["id"]: sum(a["image_id"] == im["id"] for a in coco["annotations"]) for im in coco["images"]}
    singles = {i for i, n in counts.items() if n == 1}
    assert len(singles) == 3
    subset = {**coco, "images": [im for im in coco["images"] if im["id"] in singles],
              "annotations": [a for a in coco["annotations"] if a["image_id"] in singles]}
    (tmp_path / "one_person.json").write_text(json.dumps(subset))
    default, full_frame = open_estimator(device="cpu"), open_estimator("movenet-lightning", "cpu", crops=False)
    res = evaluate_coco([default, full_frame], tmp_path / "one_person.json", data / "images", full_images=True)
    ours, before = res["models"]
    assert (ours["model"], before["model"]) == ("movenet-multipose", "movenet-lightning")
    assert ours["mean_oks"] >= before["mean_oks"] and before["costs"]["invokes_per_input"] == 1.0
    assert ours["detections"] == before["detections"] == 3  # no extra person invented


def _coco_dev_variant(tmp_path: Path, change: str) -> Path:
    """The real coco17_dev annotations with one thing wrong."""
    data = json.loads(shared_path("data", "coco17_dev", "person_keypoints.json").read_text())
    if change == "16-keypoints":
        for ann in data["annotations"]:
            ann["keypoints"] = ann["keypoints"][:48]
    elif change == "no-bbox":
        del data["annotations"][3]["bbox"]
    elif change == "no-file-name":
        del data["images"][0]["file_name"]
    elif change == "ragged-keypoints":
        data["annotations"][2]["keypoints"] = data["annotations"][2]["keypoints"][:-1]
    elif change == "no-annotations":
        del data["annotations"]
    path = tmp_path / f"{change}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change, match", [
    ("16-keypoints", "annotation 0 (id {id0}) has 16 keypoints, model movenet-lightning predicts 17 (coco17)"),
    ("no-bbox", "annotation 3 (id {id3}) has no bbox; COCO keypoint annotations need"),
    ("no-file-name", "image 0 (id {img0}) has no file_name"),
    ("ragged-keypoints", "annotation 2 (id {id2}) has keypoints of length 50"),
    ("no-annotations", "not COCO keypoints JSON (expected an object with images and annotations lists"),
])
def test_coco_annotations_not_fitting_the_model_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              change: str, match: str) -> None:
    """Checked before pycocotools sees them (it used to fail 38 lines deep in computeOks)."""
    real = json.loads(shared_path("data", "coco17_dev", "person_keypoints.json").read_text())
    ids = {f"id{i}": a["id"] for i, a in enumerate(real["annotations"][:4])} | {"img0": real["images"][0]["id"]}
    path = _coco_dev_variant(tmp_path, change)
    images = shared_path("data", "coco17_dev", "images")
    assert main(["evaluate", "--model", "movenet-lightning", "--coco", str(path), "--images", str(images)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and match.format(**ids) in err


def test_several_sets_in_one_table(capsys: pytest.CaptureFixture[str]) -> None:
    """--set NAME=DIR twice: one row per set and model, AP, AR, mean OKS, costs."""
    sets = [f"{name}={shared_path('data', name)}" for name in ("coco17_dev", "limbs12_dev")]
    assert main(["evaluate", "--model", "posenet-mobilenet-v1-075-481x641", "--set", sets[0], "--set", sets[1],
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["sets"]
    assert [r["set"] for r in res] == ["coco17_dev", "limbs12_dev"]
    (coco,), (limbs,) = (r["models"] for r in res)
    assert coco["AP"] == pytest.approx(0.489, abs=0.01) and limbs["AP"] == pytest.approx(0.339, abs=0.01)
    assert 0 < limbs["mean_oks"] < 1 and limbs["AR"] > limbs["AP"] - 0.2
    assert coco["costs"]["invokes_per_input"] == 1.0 and coco["costs"]["total_ms"] > 0
    assert main(["evaluate", "--model", "posenet-mobilenet-v1-075-481x641", "--set", sets[0], "--set", sets[1]]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["set", "model", "AP", "AP50", "AR", "mean_oks"] and len(table) == 3
    assert table[1].startswith("coco17_dev") and table[2].startswith("limbs12_dev")


@pytest.mark.parametrize("args, match", [
    (["--set", "coco17_dev"], "expected NAME=DIR"),
    (["--set", "x={tmp}"], "must hold person_keypoints.json (COCO keypoints) and an images/ folder"),
    ([], "no data; give --set NAME=DIR"),
    (["--coco", "{tmp}/a.json"], "also give --images DIR"),
])
def test_bad_sets_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                               match: str) -> None:
    assert main(["evaluate", *[a.format(tmp=tmp_path) for a in args]]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
