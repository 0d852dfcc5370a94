"""Accuracy of any model the runtime loads: OKS AP on COCO JSON, PCKh@0.5 on MPII JSON.

Models run through their estimator (``edgepose.estimators.base.open_estimator``), as
``edgepose detect`` and ``edgepose-run`` run them: a top-down pipeline
(``movenet-multipose``) and multi-pose models on the whole image; single-person models on
a square crop around each ground-truth person (COCO bbox, or MPII centre/scale) with a
25 % margin (``edgepose.estimators.crops.crop``), or on whole images with ``--full-images``.
With ``--model2`` both models run on the same inputs and the table shows them side by
side, plus keypoint agreement (PCK@0.05 of model2 against model, normalised by the crop
or image size), e.g. float vs int8. COCO results also give the mean OKS of each person's
best match and each model's costs: invokes per input and median ms per stage.

PCKh head size: 0.6 x head-box diagonal when the JSON has ``head_box``; the tutorial's
MPII JSON has none, so the fallback is the head-top -> neck distance. COCO-17 models are
scored on MPII through ``edgepose.core.schemas.MPII_TO_COCO`` (the 12 limb joints they share).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.imageio import read_image
from edgepose.core.pose import Poses
from edgepose.core.schemas import MPII_TO_COCO, get_schema
from edgepose.estimators.base import Estimate, Estimator
from edgepose.estimators.crops import Box, crop, to_source
from edgepose.models.builtin import DEFAULT_MODEL
from tools.data.mpii import read_mpii
from tools.data.samples import PIXEL_STD, load_json
from tools.errors import DataError, ToolError
from tools.metrics import mpii_head_sizes, pck, pckh

log = logging.getLogger(__name__)
MARGIN = 1.25
AGREEMENT_ALPHA = 0.05
TOTAL_STAGES = ("preprocess_ms", "invoke_ms", "decode_ms")  # what an input costs in all
COCO_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


Item = tuple[Path, "tuple[float, float, float] | None"]


def _run_instances(engines: Sequence[Estimator], items: Sequence[Item]) -> list[list[Estimate]]:
    """Per estimator, per item: its estimate with poses in image pixels (item = image and
    crop (cx, cy, size), or None for the whole image; a crop keeps its best pose)."""
    from tqdm import tqdm

    out: list[list[Estimate]] = [[] for _ in engines]
    cache: dict[Path, npt.NDArray[np.uint8]] = {}
    for path, box in tqdm(items, desc="evaluate", unit="inst", leave=False):
        image = cache.get(path)
        if image is None:
            image = read_image(path)
            if len(cache) < 64:  # several people share an image; keep a bounded cache
                cache[path] = image
        region, to_region = (image, None) if box is None else crop(image, Box.around(*box))
        for k, est in enumerate(engines):
            result = est.estimate(region)
            if to_region is not None:
                result = replace(result, poses=to_source(result.poses.best(), to_region))
            out[k].append(result)
    return out


def cost_summary(runs: Sequence[Estimate]) -> dict[str, float]:
    """Invokes per input and the median ms of each stage over an estimator's runs."""
    if not runs:
        return {}
    keys = sorted({k for r in runs for k in r.timings})
    out = {"invokes_per_input": round(float(np.mean([r.invokes for r in runs])), 3)}
    out.update({k: round(float(np.median([r.timings.get(k, 0.0) for r in runs])), 3) for k in keys})
    totals = [sum(r.timings.get(k, 0.0) for k in TOTAL_STAGES) for r in runs]
    out["total_ms"] = round(float(np.median(totals)), 3)
    return out


def _agreement(a: list[Poses], b: list[Poses], norms: list[float]) -> float:
    pa, pb, ns = [], [], []
    for x, y, n in zip(a, b, norms):
        if len(x) and len(y) and x.schema == y.schema:
            pa.append(x.xy[0])
            pb.append(y.xy[0])
            ns.append(n)
    if not pa:
        return float("nan")
    return pck(np.stack(pb), np.stack(pa), np.asarray(ns)[:, None], AGREEMENT_ALPHA)


COCO_IMAGE_KEYS = ("id", "file_name", "width", "height")
COCO_ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox", "area", "keypoints")


def check_coco_annotations(data: Any, path: Path, model: str, schema: str) -> None:
    """Refuse what pycocotools would trip over deep inside the evaluation: the wrong
    layout, a missing key, or keypoints of another schema than the model's, in one line."""
    where = f"--coco {path}"
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        got = type(data).__name__ if not isinstance(data, dict) else f"keys {', '.join(sorted(data)) or 'none'}"
        raise DataError(f"{where}: not COCO keypoints JSON (expected an object with images and annotations "
                        f"lists, got {got}); for MPII JSON use --mpii")
    want = get_schema(schema).num_keypoints
    for kind, items, keys in (("image", data["images"], COCO_IMAGE_KEYS),
                              ("annotation", data["annotations"], COCO_ANNOTATION_KEYS)):
        for i, item in enumerate(items):
            missing = [k for k in keys if not isinstance(item, dict) or k not in item]
            if missing:
                ident = f" (id {item['id']})" if isinstance(item, dict) and "id" in item else ""
                raise DataError(f"{where}: {kind} {i}{ident} has no {', '.join(missing)}; COCO keypoint "
                                f"{kind}s need {', '.join(keys)}")
    for i, ann in enumerate(data["annotations"]):
        kp = ann["keypoints"]
        if not isinstance(kp, list) or len(kp) % 3 or len(kp) // 3 != want:
            n = f"{len(kp) // 3} keypoints" if isinstance(kp, list) and len(kp) % 3 == 0 else \
                f"keypoints of length {len(kp) if isinstance(kp, list) else type(kp).__name__}"
            mpii = "; MPII-16 data goes through --mpii" if isinstance(kp, list) and len(kp) == 48 else ""
            raise DataError(f"{where}: annotation {i} (id {ann['id']}) has {n}, model {model} predicts {want} "
                            f"({schema}): use {schema} annotations, x y v for each of the {want} keypoints{mpii}")
        numbers = [*kp, *(ann["bbox"] if isinstance(ann["bbox"], list) else [])]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise DataError(f"{where}: annotation {i} (id {ann['id']}) has keypoints or a bbox that are "
                            "not finite numbers (NaN, infinity or text); fix or drop it")
    people = sum(1 for ann in data["annotations"] if not ann.get("iscrowd", 0)
                 and any(v > 0 for v in ann["keypoints"][2::3]))
    if not data["images"] or not people:
        raise DataError(f"{where}: nothing to score ({len(data['images'])} image(s), "
                        f"{len(data['annotations'])} annotation(s), {people} person(s) with labelled "
                        "keypoints); use annotations with keypoints (v > 0)")


def evaluate_coco(engines: Sequence[Estimator], ann_path: str | Path, images_dir: str | Path, *,
                  full_images: bool = False) -> dict[str, Any]:
    """OKS AP (pycocotools, iouType 'keypoints') for each estimator, the mean OKS of each
    person's best match, costs, and the two estimators' agreement. Single-pose
    estimators run on ground-truth crops unless ``full_images``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann_path, images_dir = Path(ann_path), Path(images_dir)
    if not ann_path.is_file():
        what = "is a folder; pass the annotation JSON file" if ann_path.is_dir() else "annotation file not found"
        raise DataError(f"--coco {ann_path}: {what}")
    for e in engines:
        if e.schema != "coco17":
            raise ToolError(f"model {e.name} uses schema {e.schema}; COCO AP needs a coco17 model (use --mpii)")
    data = load_json(ann_path, "--coco")
    if engines:  # all coco17 (checked above): one check of the file serves them all
        check_coco_annotations(data, ann_path, engines[0].name, engines[0].schema)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            gt = COCO()
            gt.dataset = data
            gt.createIndex()
        except (ValueError, KeyError, TypeError, AssertionError) as err:
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"--coco {ann_path}: not COCO keypoints JSON ({why}); for MPII JSON use --mpii") from None
    results: dict[str, Any] = {"dataset": str(ann_path), "models": []}
    per_engine: list[list[dict[str, Any]]] = [[] for _ in engines]
    agreement_runs: list[tuple[list[Poses], list[Poses], list[float]]] = []
    runs_of: list[list[Estimate]] = [[] for _ in engines]
    multi = [bool(e.multi_pose) or full_images for e in engines]
    for mode in sorted(set(multi)):
        idx = [k for k, m in enumerate(multi) if m == mode]
        items: list[Item] = []
        ids, norms = [], []
        for img in gt.loadImgs(gt.getImgIds()):
            path = images_dir / img["file_name"]
            if mode:
                items.append((path, None))
                ids.append(img["id"])
                norms.append(float(max(img["height"], img["width"])))
                continue
            for ann in gt.loadAnns(gt.getAnnIds(imgIds=img["id"], iscrowd=False)):
                if ann.get("num_keypoints", 1) == 0:
                    continue
                x, y, w, h = ann["bbox"]
                size = max(w, h) * MARGIN
                items.append((path, (x + w / 2, y + h / 2, size)))
                ids.append(img["id"])
                norms.append(size)
        runs = _run_instances([engines[k] for k in idx], items)
        for k, estimates in zip(idx, runs):
            runs_of[k] = estimates
            for image_id, est in zip(ids, estimates):
                per_engine[k] += est.poses.to_coco_results(image_id)
        if len(idx) == 2:
            agreement_runs.append(([r.poses for r in runs[0]], [r.poses for r in runs[1]], norms))
    for e, dets, estimates in zip(engines, per_engine, runs_of):
        stats = [float("nan")] * len(COCO_STATS)
        mean_oks = float("nan")
        if dets:
            with contextlib.redirect_stdout(io.StringIO()):
                ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            stats = [float(s) for s in ev.stats]
            mean_oks = _mean_best_oks(gt, ev)
        results["models"].append({"model": e.name, "device": e.device, "detections": len(dets),
                                  **dict(zip(COCO_STATS, stats)), "mean_oks": mean_oks,
                                  "costs": cost_summary(estimates)})
    if agreement_runs:
        results[f"agreement_pck@{AGREEMENT_ALPHA}"] = _agreement(*agreement_runs[0])
    return results


def _mean_best_oks(gt: Any, ev: Any) -> float:
    """Mean over ground-truth people (with keypoints) of the OKS of their best-matching
    detection in the same image (0 when none), from pycocotools' own OKS matrices."""
    best = []
    for image_id in gt.getImgIds():
        anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=image_id, iscrowd=False))
                if a.get("num_keypoints", 1) > 0]
        if not anns:
            continue
        sims = np.asarray(ev.ious.get((image_id, 1), []), np.float64)  # (detections, people)
        if sims.size == 0:
            best += [0.0] * len(anns)
            continue
        column = {g["id"]: j for j, g in enumerate(ev._gts[image_id, 1])}  # the matrix's order
        best += [float(sims[:, column[a["id"]]].max()) for a in anns]
    return float(np.mean(best)) if best else float("nan")


def _mpii_pred(p: Poses) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """(16, 2) MPII-ordered prediction and which joints the model predicts."""
    xy = np.zeros((16, 2), np.float32)
    have = np.zeros(16, bool)
    if not len(p):
        return xy, have
    if p.schema == "mpii16":
        return p.xy[0], np.ones(16, bool)
    for m, c in MPII_TO_COCO.items():
        xy[m], have[m] = p.xy[0, c], True
    return xy, have


def evaluate_mpii(engines: Sequence[Estimator], ann_path: str | Path, images_dir: str | Path) -> dict[str, Any]:
    """PCKh@0.5 on the tutorial's MPII JSON for each engine, plus their agreement."""
    ann_path, images_dir = Path(ann_path), Path(images_dir)
    samples = read_mpii(ann_path, images_dir)  # validated: 16 joints, centre, scale, images present
    entries = load_json(ann_path, "MPII annotation file")
    gt = np.stack([s.joints for s in samples])
    vis = np.stack([s.visibility for s in samples]) > 0
    boxes = [e.get("head_box") for e in entries]
    heads = mpii_head_sizes(gt, np.asarray(boxes, np.float32) if all(b is not None for b in boxes) else None)
    items = [(Path(s.image_path), (float(s.center[0]), float(s.center[1]), s.scale * PIXEL_STD * MARGIN))
             for s in samples]
    estimated = _run_instances(engines, items)
    runs = [[r.poses for r in estimates] for estimates in estimated]
    results: dict[str, Any] = {"dataset": str(ann_path), "models": [],
                               "head_size": "head_box" if all(b is not None for b in boxes)
                               else "head-top to neck distance"}
    for e, poses_list, estimates in zip(engines, runs, estimated):
        preds = [_mpii_pred(p) for p in poses_list]
        xy = np.stack([p for p, _ in preds])
        have = np.stack([h for _, h in preds])
        overall, per_joint = pckh(xy, gt, vis & have, heads)
        results["models"].append({"model": e.name, "device": e.device, "PCKh@0.5": overall,
                                  "joints_scored": int(have.any(axis=0).sum()),
                                  "per_joint": [None if np.isnan(v) else float(v) for v in per_joint],
                                  "costs": cost_summary(estimates)})
    if len(engines) == 2:
        results[f"agreement_pck@{AGREEMENT_ALPHA}"] = _agreement(runs[0], runs[1], [b[2] for _, b in items])
    return results


def format_table(results: dict[str, Any]) -> str:
    models = results["models"]
    keys = [k for k in ("AP", "AP50", "AP75", "AR", "mean_oks", "PCKh@0.5", "detections")
            if k in models[0]]
    lines = [f"{'model':<40} " + " ".join(f"{k:>10}" for k in keys) + f" {'invokes':>8}"]
    for m in models:
        cells = [f"{m[k]:>10.3f}" if isinstance(m[k], float) else f"{m[k]:>10}" for k in keys]
        cells.append(f"{m.get('costs', {}).get('invokes_per_input', float('nan')):>8.2f}")
        lines.append(f"{m['model'] + ' (' + m['device'] + ')':<40} " + " ".join(cells))
    key = f"agreement_pck@{AGREEMENT_ALPHA}"
    if key in results:
        lines.append(f"keypoint agreement, model2 vs model (PCK@{AGREEMENT_ALPHA}): {results[key]:.3f}")
    return "\n".join(lines)


def format_sets(sets: Sequence[dict[str, Any]]) -> str:
    """One table for several COCO sets: a row per set and model (AP, AR, mean OKS of the
    matched ground-truth people, poses given, invokes and median ms per image)."""
    head = f"{'set':<16} {'model':<32} " + " ".join(f"{k:>8}" for k in SET_COLUMNS)
    lines = [head + f" {'invokes':>8} {'ms/img':>8}"]
    for res in sets:
        for m in res["models"]:
            cells = [f"{m[k]:>8.3f}" if isinstance(m[k], float) else f"{m[k]:>8}" for k in SET_COLUMNS]
            costs = m.get("costs", {})
            cells += [f"{costs.get('invokes_per_input', float('nan')):>8.2f}",
                      f"{costs.get('total_ms', float('nan')):>8.1f}"]
            lines.append(f"{res['set']:<16} {m['model'] + ' (' + m['device'] + ')':<32} " + " ".join(cells))
    return "\n".join(lines)


SET_COLUMNS = ("AP", "AP50", "AR", "mean_oks", "detections")
SET_ANNOTATIONS = "person_keypoints.json"


def parse_set(spec: str) -> tuple[str, Path, Path]:
    """``NAME=DIR`` (DIR holding person_keypoints.json and images/) -> name, JSON, images."""
    name, eq, folder = spec.partition("=")
    if not eq or not name or not folder:
        raise DataError(f"--set {spec!r}: expected NAME=DIR, e.g. --set coco17_dev=../shared/data/coco17_dev")
    root = Path(folder)
    ann, images = root / SET_ANNOTATIONS, root / "images"
    if not ann.is_file() or not images.is_dir():
        raise DataError(f"--set {spec}: {root} must hold {SET_ANNOTATIONS} (COCO keypoints) and an images/ "
                        "folder; for other layouts use --coco FILE --images DIR")
    return name, ann, images


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="OKS AP (COCO) or PCKh@0.5 (MPII) of one or two models",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name or .tflite path (with a <stem>.toml manifest); default {DEFAULT_MODEL}")
    p.add_argument("--model2", help="a second model to compare side by side (e.g. the int8 build)")
    p.add_argument("--device", default="cpu", help="cpu, edgetpu or auto")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--coco", type=Path, help="COCO keypoints JSON")
    data.add_argument("--mpii", type=Path, help="MPII JSON (tutorial layout)")
    data.add_argument("--set", action="append", metavar="NAME=DIR", dest="sets",
                      help="a COCO set: DIR holds person_keypoints.json and images/; repeat for several "
                           "sets in one table (e.g. --set coco17_dev=DIR --set limbs12_dev=DIR)")
    p.add_argument("--images", type=Path, help="folder with the images of --coco / --mpii annotations")
    p.add_argument("--full-images", action="store_true",
                   help="COCO: run single-pose models on whole images too (not on ground-truth crops)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgepose.estimators.factory import open_estimator

    sets = [parse_set(s) for s in args.sets or []]
    if not sets:
        if not (args.coco or args.mpii):
            raise DataError("evaluate: no data; give --set NAME=DIR (repeatable), --coco FILE --images DIR "
                            "or --mpii FILE --images DIR")
        if args.images is None:
            raise DataError(f"--{'coco' if args.coco else 'mpii'}: also give --images DIR (the folder of its images)")
        if not args.images.is_dir():
            raise DataError(f"--images {args.images}: no such folder")
        flag, ann_file = ("--coco", args.coco) if args.coco else ("--mpii", args.mpii)
        if not ann_file.is_file():  # before any model loads (or downloads)
            what = "is a folder; pass the annotation JSON file" if ann_file.is_dir() else "annotation file not found"
            raise DataError(f"{flag} {ann_file}: {what}")
    engines = []
    try:
        for m in (args.model, args.model2):
            if m:
                engines.append(open_estimator(m, device=args.device))
        if sets:
            results: Any = []
            for name, ann, images in sets:
                results.append({"set": name, **evaluate_coco(engines, ann, images, full_images=args.full_images)})
        elif args.coco:
            results = evaluate_coco(engines, args.coco, args.images, full_images=args.full_images)
        else:
            results = evaluate_mpii(engines, args.mpii, args.images)
    finally:
        for e in engines:
            e.close()
    if args.json:
        print(json.dumps({"sets": results} if sets else results, indent=1))
    else:
        print(format_sets(results) if sets else format_table(results))
    return 0
