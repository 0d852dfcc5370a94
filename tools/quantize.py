"""Full-integer int8 post-training quantization with real images, for the Edge TPU.

Takes a Keras model (.keras), a SavedModel directory or (not supported here) a float
.tflite; calibrates with real images from a folder, a video or TFRecords; writes the
int8 .tflite, its edgepose manifest and a float-vs-int8 report (JSON + PNG).

The manifest keeps the float input semantics (``mean``/``std``) so
``edgepose.core.preprocess.to_input_tensor`` quantizes with the input tensor's own
scale/zero point; when that quantization is the identity on raw pixels (scale 1, zero 0
for uint8 input of a 0..255 model) mean/std are left out and frames are fed as they are.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import ModelError
from edgepose.core.imageio import IMAGE_SUFFIXES, list_images, read_image
from edgepose.models.manifest import DECODER_KINDS, SCHEMA_NAMES, Manifest, load_manifest, manifest_from_dict, write_manifest
from edgepose.core.preprocess import resize
from tools.argtypes import positive_int
from tools.errors import ConversionError, DataError, ToolError

log = logging.getLogger(__name__)

RECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record")
IO_DTYPES = ("uint8", "int8")


@dataclass(frozen=True)
class QuantizeResult:
    model_path: Path
    manifest_path: Path
    report_path: Path
    figure_path: Path
    report: dict[str, Any]
    float_model_path: Path


# --- representative data -------------------------------------------------------------

def _video_frames(path: Path, count: int) -> Iterator[npt.NDArray[np.uint8]]:
    try:
        import cv2
    except ImportError:
        raise ToolError("reading a video needs OpenCV: pip install 'edgepose[tools]'") from None
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"representative set {path} is not an image, a TFRecord or a video OpenCV can read; "
                        "give an image folder, a video or TFRecord files")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    wanted = set(np.linspace(0, max(total - 1, 0), num=min(count, total)).round().astype(int).tolist())
    try:
        for i in range(total):
            ok, frame = cap.read()
            if not ok:
                break
            if i in wanted:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _record_images(files: list[Path], count: int, input_size: tuple[int, int]) -> Iterator[npt.NDArray[np.uint8]]:
    """Person crops from training TFRecords, cropped as the training pipeline crops them."""
    from tools.data.pipeline import representative_images

    yield from representative_images(files, input_size, count)


def iter_source_frames(source: str | Path, count: int,
                       input_size: tuple[int, int] = (256, 256)) -> Iterator[npt.NDArray[np.uint8]]:
    """Up to ``count`` RGB uint8 frames from an image folder/file, a video or TFRecords
    (person crops of ``input_size``)."""
    src = Path(source)
    if not src.exists():
        raise DataError(f"representative set {src} not found; give an image folder, a video or TFRecord files")
    if src.is_dir():
        images = list_images(src)
        records = sorted(p for p in src.iterdir() if p.suffix.lower() in RECORD_SUFFIXES)
        if images:
            for p in images[:count]:
                yield read_image(p)
        elif records:
            yield from _record_images(records, count, input_size)
        return
    suffix = src.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        yield read_image(src)
    elif suffix in RECORD_SUFFIXES:
        yield from _record_images([src], count, input_size)
    else:
        yield from _video_frames(src, count)


def load_representative(source: str | Path, count: int, input_size: tuple[int, int],
                        resize_mode: str = "letterbox", mean: Any = None, std: Any = None,
                        progress: bool = True) -> list[npt.NDArray[np.float32]]:
    """Float input batches (1, h, w, 3) of real frames, resized and normalised as the model expects."""
    from tqdm import tqdm

    m = np.asarray(0.0 if mean is None else mean, np.float32)
    s = np.asarray(1.0 if std is None else std, np.float32)
    out = []
    for frame in tqdm(iter_source_frames(source, count, input_size), total=count, desc="representative",
                      unit="img", disable=not progress):
        resized, _ = resize(frame, input_size, resize_mode)  # type: ignore[arg-type]
        out.append(((resized.astype(np.float32) - m) / s)[None])
    if not out:
        raise DataError(f"representative set {source} has no images ({', '.join(IMAGE_SUFFIXES)}), video frames "
                        "or TFRecord examples; give a folder of real images, a video or TFRecords")
    return out


# --- conversion ----------------------------------------------------------------------

def _source_manifest(model: Path) -> Manifest | None:
    """The sidecar manifest; for a SavedModel also the one `edgepose-tools train` writes next to
    ``<name>_saved_model`` (``<name>.toml``)."""
    trained = model.with_name(model.name.removesuffix("_saved_model") + ".toml")
    for cand in (model.with_suffix(".toml"), model / "manifest.toml", model / f"{model.name}.toml", trained):
        if cand.is_file():
            return load_manifest(cand)
    return None


def _converter(model: Path) -> tuple[Any, tuple[int, int]]:
    """A TFLiteConverter for ``model`` (any format ``tools.importers`` reads) and its (h, w) input size."""
    from tools import importers

    if model.suffix == ".tflite":
        raise ConversionError(f"{model}: quantizing a float .tflite is not supported by this tool; quantize the "
                              "Keras model or SavedModel it came from (or use ai-edge-quantizer directly)")
    imported = importers.load(model)
    return imported.make_converter(), imported.input.size


def _convert(conv: Any, what: str) -> bytes:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras export prints "Saved artifact at ..."
            return bytes(conv.convert())
    except Exception as err:  # the converter raises ConverterError/RuntimeError/ValueError
        text = str(err)
        m = re.search(r"'(?:tf|tfl)\.\w+' op [^\n]*", text)  # e.g. 'tf.Erf' op is neither a custom op nor ...
        if m:
            why = m.group(0)
        else:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [type(err).__name__]
            why = next((ln for ln in lines if "error" in ln.lower()), lines[0]).split("error: ")[-1]
        raise ConversionError(f"{what} failed: {why[:300]}; replace that op or layer") from None


def _check_int8(model_bytes: bytes, io_dtype: str, source: Path) -> None:
    """The converter can fall back to float without an error; never write that as 'int8'."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    dtypes = {np.dtype(d["dtype"]).name for d in interp.get_input_details() + interp.get_output_details()}
    if dtypes != {io_dtype}:
        raise ConversionError(f"int8 quantization of {source} produced {'/'.join(sorted(dtypes))} inputs/outputs, "
                              f"not {io_dtype}: the model was not fully quantized; check its layers and the "
                              "representative set")


def quantize(model: str | Path, representative: str | Path, output: str | Path | None = None, *,
             num_samples: int = 100, io_dtype: str = "uint8", decoder: str | None = None,
             schema: str | None = None, held_out: int = 8, progress: bool = True) -> QuantizeResult:
    """Quantize ``model`` to full int8 and write the .tflite, manifest and report next to ``output``."""
    model = Path(model)
    if not model.exists():
        raise ModelError(f"model {model} not found; give a .keras file or a SavedModel directory")
    if io_dtype not in IO_DTYPES:
        raise ToolError(f"--io {io_dtype!r}: expected one of {', '.join(IO_DTYPES)}")
    if num_samples < 1:
        raise ToolError(f"--samples {num_samples}: need at least 1 (100 or more recommended)")
    if held_out < 1:  # 0 would leave calibration empty, and TF then silently writes a float model
        raise ToolError(f"--held-out {held_out}: need at least 1 image for the float-vs-int8 report")
    out = Path(output) if output else model.with_name(f"{model.stem}_int8.tflite")
    if not out.parent.is_dir():
        raise ToolError(f"--output {out}: directory {out.parent} does not exist; create it first")
    if out.is_dir():
        raise ToolError(f"--output {out} is a folder; give the .tflite file to write, e.g. {out / 'model_int8.tflite'}")
    src_m = _source_manifest(model)
    decoder = decoder or (src_m.decoder if src_m else None)
    schema = schema or (src_m.schema if src_m else None)
    if not decoder or not schema:
        raise ToolError(f"{model} has no manifest ({model.with_suffix('.toml').name}); pass --decoder and --schema")
    if decoder not in DECODER_KINDS or schema not in SCHEMA_NAMES:
        raise ToolError(f"--decoder {decoder!r} / --schema {schema!r}: expected decoder in {', '.join(DECODER_KINDS)} "
                        f"and schema in {', '.join(SCHEMA_NAMES)}")
    conv, size = _converter(model)
    mode = src_m.resize if src_m else "letterbox"
    mean, std = (src_m.mean, src_m.std) if src_m else (None, None)
    frames = load_representative(representative, num_samples + held_out, size, mode, mean, std, progress)
    if len(frames) > 2 * held_out:
        calib, check = frames[:-held_out], frames[-held_out:]
    else:
        calib, check = frames, frames[:held_out]
        log.warning("only %d images: held-out images overlap the representative set", len(frames))

    import tensorflow as tf

    float_bytes = _convert(conv, f"float conversion of {model}")
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = getattr(tf, io_dtype)
    int8_bytes = _convert(conv, f"int8 quantization of {model}")
    _check_int8(int8_bytes, io_dtype, model)
    out.write_bytes(int8_bytes)

    from tools.quant_report import compare, write_report

    params = dict(src_m.decoder_params) if src_m else {}
    report = compare(float_bytes, int8_bytes, check, size, decoder, {"schema": schema, **params})
    report.update({"model": str(model), "output": str(out), "representative": str(representative),
                   "num_samples": len(calib), "io": io_dtype, "held_out_overlaps": len(frames) <= 2 * held_out})
    scale, zero = report["input_quantization"]
    raw_ok = mean is None and std is None and abs(scale - 1.0) < 1e-6 and zero == (0 if io_dtype == "uint8" else -128)
    if not raw_ok and mean is None and std is None:
        mean, std = (0.0,), (1.0,)  # float input is raw pixels; let to_input_tensor quantize
    base = {"name": out.stem, "file": out.name, "input_size": size, "decoder": decoder, "schema": schema,
            "resize": mode, "mean": mean, "std": std, "decoder_params": params, "device": "cpu",
            "edgetpu_twin": f"{out.stem}_edgetpu",
            "description": f"full-int8 ({io_dtype} I/O) quantization of {model.name} with {len(calib)} images"}
    merged = {**(src_m.to_dict() if src_m else {}), **base, "url": "", "sha256": ""}
    manifest: Manifest = manifest_from_dict({k: v for k, v in merged.items() if v is not None}, origin=str(out))
    man_path = write_manifest(manifest, out.with_suffix(".toml"))
    # The float twin, so `edgepose-tools evaluate --model FLOAT --model2 INT8` can compare them.
    float_path = out.with_name(out.stem.removesuffix("_int8") + "_float.tflite")
    float_path.write_bytes(float_bytes)
    float_m = manifest.with_(name=float_path.stem, file=float_path.name, edgetpu_twin="", mean=src_m.mean if src_m else None,
                             std=src_m.std if src_m else None,
                             description=f"float32 conversion of {model.name} (the int8 model's reference)")
    write_manifest(float_m, float_path.with_suffix(".toml"))
    rep_path, fig_path = out.with_name(out.stem + "_report.json"), out.with_name(out.stem + "_report.png")
    write_report(report, rep_path, fig_path)
    return QuantizeResult(out, man_path, rep_path, fig_path, report, float_path)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quantize", help="full-int8 quantization with real images + a float-vs-int8 report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a .keras file or a SavedModel directory")
    p.add_argument("--representative", required=True, help="image folder, video file or TFRecord file/folder")
    p.add_argument("--samples", type=positive_int, default=100, help="representative images for calibration")
    p.add_argument("--io", default="uint8", choices=IO_DTYPES, help="input/output type of the int8 model")
    p.add_argument("--output", type=Path, help="output .tflite (default: MODEL_int8.tflite next to the model)")
    p.add_argument("--held-out", type=positive_int, default=8, help="images kept out of calibration for the report")
    p.add_argument("--decoder", help="decoder kind, when the model has no manifest")
    p.add_argument("--schema", help="keypoint schema, when the model has no manifest")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    r = quantize(args.model, args.representative, args.output, num_samples=args.samples, io_dtype=args.io,
                 decoder=args.decoder, schema=args.schema, held_out=args.held_out, progress=not args.no_progress)
    print(f"wrote {r.model_path} ({r.model_path.stat().st_size} bytes), {r.manifest_path}, {r.report_path}, "
          f"{r.figure_path}, and the float twin {r.float_model_path}")
    for o in r.report["outputs"]:
        print(f"  output {o['name']} {o['shape']}: mean abs {o['mean_abs']:.4g}, max abs {o['max_abs']:.4g}, "
              f"relative {o['relative']:.3%}")
    kp = r.report.get("keypoints")
    if kp:
        print(f"  keypoints int8 vs float: PCK@0.05 {kp['pck@0.05']:.3f}, mean distance {kp['mean_distance_px']:.2f} px")
    return 0
