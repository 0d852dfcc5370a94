"""Full-integer int8 post-training quantization with real images, for the Edge TPU.

Takes any model ``tools.importers`` reads (.keras, a SavedModel directory, ...); checks
its outputs against the decoder; calibrates with real images from a folder, a video or
TFRecords (at least ``min(--samples, 10)``); writes the int8 .tflite, its edgepose
manifest, the float twin and a float-vs-int8 report (JSON + PNG + overlay image), all
or none of them.

The manifest keeps the float input semantics (``mean``/``std``) so
``edgepose.core.preprocess.to_input_tensor`` quantizes with the input tensor's own
scale/zero point, and ``channels`` (rgb/bgr) says which order the model takes the
channels in; the input semantics come from ``--mean/--std/--channels/--layout``, else the
source's manifest, else the importer. When that quantization is the identity on raw pixels (scale 1, zero 0
for uint8 input of a 0..255 model) mean/std are left out and frames are fed as they are.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.cli.common import check_stop
from edgepose.core.errors import ModelError
from edgepose.core.imageio import IMAGE_SUFFIXES, list_images, read_image
from edgepose.core.preprocess import resize
from edgepose.models.manifest import (
    DECODER_KINDS,
    SCHEMA_NAMES,
    Manifest,
    load_manifest,
    manifest_from_dict,
    write_manifest,
)
from tools.argtypes import positive_int
from tools.errors import ConversionError, DataError, ToolError

log = logging.getLogger(__name__)

RECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record")
IO_DTYPES = ("uint8", "int8")
MIN_SAMPLES = 10  # fewest calibration images accepted (or --samples, when that is smaller)


@dataclass(frozen=True)
class QuantizeResult:
    model_path: Path
    manifest_path: Path
    report_path: Path
    figure_path: Path
    report: dict[str, Any]
    float_model_path: Path
    calibration: int = 0  # images the int8 ranges were calibrated on
    requested: int = 0  # --samples
    held_out: int = 0  # images kept for the float-vs-int8 report
    overlay_path: Path | None = None

    @property
    def files(self) -> list[Path]:
        """Every file written, the int8 model first."""
        found = [self.model_path, self.manifest_path, self.float_model_path, self.float_model_path.with_suffix(".toml"),
                 self.report_path, self.figure_path, self.overlay_path]
        return [f for f in found if f is not None]


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


def available_frames(source: str | Path, count: int) -> int | None:
    """How many of ``count`` frames ``source`` can give (None when only reading tells: TFRecords)."""
    src = Path(source)
    if src.is_dir():
        images = list_images(src)
        return min(count, len(images)) if images else None
    if src.suffix.lower() in IMAGE_SUFFIXES:
        return 1
    if src.suffix.lower() in RECORD_SUFFIXES or not src.is_file():
        return None
    try:
        import cv2
    except ImportError:
        return None
    cap = cv2.VideoCapture(str(src))
    try:
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return min(count, frames) if frames > 0 else None


def load_representative(source: str | Path, count: int, input_size: tuple[int, int],
                        resize_mode: str = "letterbox", mean: Any = None, std: Any = None,
                        progress: bool = True, channels: str = "rgb") -> list[npt.NDArray[np.float32]]:
    """Float input batches (1, h, w, 3) of real frames, resized, put in ``channels`` order and
    normalised as the model expects (the same steps as ``edgepose.core.preprocess.to_input_tensor``)."""
    from tqdm import tqdm

    m = np.asarray(0.0 if mean is None else mean, np.float32)
    s = np.asarray(1.0 if std is None else std, np.float32)
    out = []
    total = available_frames(source, count)
    for frame in tqdm(iter_source_frames(source, count, input_size), total=total, desc="representative",
                      unit="img", disable=not progress):
        resized, _ = resize(frame, input_size, resize_mode)  # type: ignore[arg-type]
        if channels == "bgr":
            resized = resized[..., ::-1]
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


def _import(model: Path, **options: Any) -> Any:
    """The model brought into TensorFlow (``tools.importers.ImportedModel``, any format it reads):
    ``make_converter()`` gives a fresh TFLiteConverter, ``input.size`` the (h, w) input size."""
    from tools import importers

    return importers.load(model, **options)


def _per_channel(flag: str, values: Any) -> tuple[float, ...] | None:
    if values is None:
        return None
    v = tuple(float(x) for x in ([values] if isinstance(values, (int, float)) else values))
    if len(v) not in (1, 3):
        raise ToolError(f"{flag} {' '.join(f'{x:g}' for x in v)}: give 1 value or 3 (one per channel)")
    if flag == "--std" and not all(x > 0 for x in v):
        raise ToolError(f"{flag} {' '.join(f'{x:g}' for x in v)}: every std must be positive")
    return v


def _input_flags(mean: Any, std: Any, channels: str | None, layout: str | None) -> None:
    """Refuse bad --mean/--std/--channels/--layout before anything is imported."""
    from tools.importers.base import CHANNEL_ORDERS, LAYOUTS

    if channels is not None and channels not in CHANNEL_ORDERS:
        raise ToolError(f"--channels {channels!r}: expected one of {', '.join(CHANNEL_ORDERS)}")
    if layout is not None and layout not in LAYOUTS:
        raise ToolError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    _per_channel("--mean", mean)
    _per_channel("--std", std)


def input_semantics(imported: Any, src_m: Manifest | None, mean: Any, std: Any, channels: str | None,
                    layout: str | None) -> tuple[Any, Any, str, str]:
    """mean, std, channels, layout: the flags, else the source manifest, else the importer's InputSpec."""
    spec = imported.input
    mean, std = _per_channel("--mean", mean), _per_channel("--std", std)
    if mean is None and std is None:
        mean, std = (src_m.mean, src_m.std) if src_m and (src_m.mean or src_m.std) else (spec.mean, spec.std)
    channels = channels or (src_m.channels if src_m else spec.channels)
    return mean, std, channels, layout or spec.layout


def _convert(conv: Any, what: str) -> bytes:
    printed = io.StringIO()
    try:
        # Keras export prints "Saved artifact at ..."; TF warns of "Statistics for quantized inputs";
        # its C++ side prints the traceback of a Python error it swallows (Ctrl-C mid-call): to the log
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = bytes(conv.convert())
        for w in caught:
            log.debug("converter: %s", w.message)
        return data
    except Exception as err:  # the converter raises ConverterError/RuntimeError/ValueError
        text = str(err)
        m = re.search(r"'(?:tf|tfl)\.\w+' op [^\n]*", text)  # e.g. 'tf.Erf' op is neither a custom op nor ...
        if m:
            why = m.group(0)
        else:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [type(err).__name__]
            why = next((ln for ln in lines if "error" in ln.lower()), lines[0]).split("error: ")[-1]
        raise ConversionError(f"{what} failed: {why[:300]}; replace that op or layer") from None
    finally:
        if printed.getvalue().strip():
            log.debug("converter printed: %s", printed.getvalue().strip())


def _check_int8(model_bytes: bytes, io_dtype: str, source: Path, float_tail: bool = False) -> None:
    """The converter can fall back to float without an error; never write that as 'int8'
    (outputs of a float post-processing tail excepted, see ``_int8_convert``)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    dtypes = {np.dtype(d["dtype"]).name for d in interp.get_input_details()
              + ([] if float_tail else interp.get_output_details())}
    if dtypes != {io_dtype}:
        raise ConversionError(f"int8 quantization of {source} produced {'/'.join(sorted(dtypes))} inputs/outputs, "
                              f"not {io_dtype}: the model was not fully quantized; check its layers and the "
                              "representative set")


def convert_int8(conv: Any, calib: list[npt.NDArray[np.float32]], io_dtype: str, model: Path) -> bytes:
    """Full-integer int8 conversion with ``calib`` as the representative set (TF's converter,
    whose op versions edgetpu_compiler 16 accepts); refuses a model that stayed float."""
    import tensorflow as tf

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = getattr(tf, io_dtype)
    int8_bytes = _convert(conv, f"int8 quantization of {model}")
    _check_int8(int8_bytes, io_dtype, model)
    return int8_bytes


def _int8_convert(imported: Any, calib: list[npt.NDArray[np.float32]], io_dtype: str,
                  model: Path) -> tuple[bytes, bool]:
    """Full-int8 bytes; when the graph ends in post-processing (MoveNet SinglePose: ARG_MAX,
    GATHER_ND, CAST...), the network is quantized and that tail stays float/int32 with float
    outputs, as in Coral's int8 MoveNet. Returns (bytes, whether a float tail was kept)."""
    import tensorflow as tf

    make = imported.make_converter
    if imported.float_tail:
        return _int8_with_float_tail(make, calib, io_dtype, model, list(imported.float_tail)), True
    try:
        return convert_int8(make(), calib, io_dtype, model), False
    except ConversionError as err:
        first = err
    conv = make()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.inference_input_type = getattr(tf, io_dtype)
    conv.inference_output_type = tf.float32
    data = _convert(conv, f"int8 quantization of {model}")
    import tempfile

    from tools.check import check_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "int8.tflite"
        path.write_bytes(data)
        status = check_model(path).status
    if status not in ("mapped", "cpu-tail"):
        raise ConversionError(f"{first}; with a float post-processing tail allowed the network itself still runs "
                              f"on the CPU (check: {status}); cut the graph before the post-processing with --outputs")
    _check_int8(data, io_dtype, model, float_tail=True)
    return data, True


def _int8_with_float_tail(make: Any, calib: list[npt.NDArray[np.float32]], io_dtype: str, model: Path,
                          tail: list[str]) -> bytes:
    """Calibrate, then quantize everything but the ``tail`` nodes (TF's selective quantization,
    the one the quantization debugger uses); the network maps to the Edge TPU, the tail runs on the CPU."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as lite_convert
    from tensorflow.lite.python import util as lite_util

    conv = make()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x] for x in calib)
    conv._experimental_calibrate_only = True
    calibrated = _convert(conv, f"int8 calibration of {model}")
    try:
        # float I/O here (QUANTIZE in front, the float tail behind); then the input becomes uint8/int8
        data = lite_convert.mlir_quantize(calibrated, fully_quantize=False, input_data_type=tf.float32,
                                          output_data_type=tf.float32, denylisted_nodes=tail)
        out = bytes(lite_util.modify_model_io_type(data, getattr(tf, io_dtype), tf.float32))
    except Exception as err:  # the quantizer raises RuntimeError/ValueError with the MLIR diagnostic
        raise ConversionError(f"int8 quantization of {model} with a float post-processing tail failed: "
                              f"{str(err).splitlines()[0][:300]}") from None
    _check_int8(out, io_dtype, model, float_tail=True)
    return out


def split_representative(frames: list[npt.NDArray[np.float32]], source: str | Path, num_samples: int,
                          held_out: int) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]]]:
    """(calibration, held-out) images; refuses a set below the minimum with the number needed.

    Calibration takes up to ``num_samples`` images and needs at least ``min(num_samples,
    MIN_SAMPLES)``; the held-out images come after them, or overlap them (with a warning) when
    the set is too small for both."""
    need = min(num_samples, MIN_SAMPLES)
    if len(frames) < need:
        raise DataError(f"representative set {source} has {len(frames)} usable image(s); calibration needs at least "
                        f"{need} (--samples {num_samples}, {MIN_SAMPLES} or more recommended): add real images of "
                        "people, or lower --samples")
    if len(frames) >= need + held_out:
        calib, check = frames[:-held_out][:num_samples], frames[-held_out:]
    else:
        calib, check = frames[:num_samples], frames[-held_out:]
        log.info("representative set %s has %d images: the %d held-out images overlap the calibration set",
                    source, len(frames), len(check))
    if len(calib) < num_samples:
        log.info("representative set %s: calibrating on %d of %d images (--samples); it has no more",
                    source, len(calib), num_samples)
    return calib, check


def check_outputs_fit(model: Path, float_bytes: bytes, size: tuple[int, int], decoder: str,
                      params: dict[str, Any]) -> list[tuple[int, ...]]:
    """The output shapes of the float model, refused in one line when the runtime's decoder
    cannot read them (run on zero tensors of those shapes, before anything is quantized or written)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgepose.core.errors import ConfigError
    from edgepose.core.preprocess import Transform
    from edgepose.decoders import OutputTensor, get_decoder

    details = sorted(Interpreter(model_content=float_bytes).get_output_details(), key=lambda d: d["name"])
    shapes = [tuple(int(x) for x in d["shape"]) for d in details]
    zeros = [OutputTensor(np.zeros(sh, np.float32), name=d["name"]) for sh, d in zip(shapes, details)]
    try:
        get_decoder(decoder)(zeros, Transform.identity(*size), **params)
    except (ModelError, ConfigError) as err:
        raise ModelError(f"{model}: {err}") from None
    return shapes


def quantize(model: str | Path, representative: str | Path, output: str | Path | None = None, *,
             num_samples: int = 100, io_dtype: str = "uint8", decoder: str | None = None,
             schema: str | None = None, held_out: int = 8, progress: bool = True, mean: Any = None,
             std: Any = None, channels: str | None = None, layout: str | None = None,
             import_options: dict[str, Any] | None = None) -> QuantizeResult:
    """Quantize ``model`` to full int8 and write the .tflite, manifest and report next to ``output``.

    Everything is checked and computed before the first file is written; a failure while
    writing removes what was written, so an error never leaves a .tflite behind."""
    from tools import importers

    model = Path(model)
    if not model.exists():
        raise ModelError(f"model {model} not found; give a .keras file, a SavedModel or TF.js folder, an .onnx "
                         "or a float .tflite")
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
    importers.check_importable(model)  # an unknown or unsupported format, before asking for more
    _input_flags(mean, std, channels, layout)
    src_m = _source_manifest(model)
    decoder = decoder or (src_m.decoder if src_m else None)
    schema = schema or (src_m.schema if src_m else None)
    if not decoder or not schema:
        missing = " and ".join(f for f, v in (("--decoder", decoder), ("--schema", schema)) if not v)
        raise ToolError(f"{model} has no manifest ({model.with_suffix('.toml').name}) saying how to read its outputs; "
                        f"pass {missing} (decoders: {', '.join(DECODER_KINDS)}; schemas: {', '.join(SCHEMA_NAMES)})")
    if decoder not in DECODER_KINDS or schema not in SCHEMA_NAMES:
        raise ToolError(f"--decoder {decoder!r} / --schema {schema!r}: expected decoder in {', '.join(DECODER_KINDS)} "
                        f"and schema in {', '.join(SCHEMA_NAMES)}")
    imported = _import(model, **({"layout": layout} if layout else {}), **(import_options or {}))
    conv, size = imported.make_converter(), imported.input.size
    mode = src_m.resize if src_m else "letterbox"
    mean, std, channels, layout = input_semantics(imported, src_m, mean, std, channels, layout)
    params = dict(src_m.decoder_params) if src_m else {}
    float_bytes = _convert(conv, f"float conversion of {model}")
    check_outputs_fit(model, float_bytes, size, decoder, {"schema": schema, **params})
    frames = load_representative(representative, num_samples + held_out, size, mode, mean, std, progress, channels)
    calib, check = split_representative(frames, representative, num_samples, held_out)
    int8_bytes, float_tail = _int8_convert(imported, calib, io_dtype, model)

    from tools.quant_report import compare, layer_errors, overlay, write_report

    report = compare(float_bytes, int8_bytes, check, size, decoder, {"schema": schema, **params})
    report["layers"] = layer_errors(imported.make_converter, calib, check)
    report.update({"model": str(model), "output": out.name, "representative": str(representative),
                   "num_samples": len(calib), "requested_samples": num_samples, "held_out": len(check),
                   "io": io_dtype, "float_tail": float_tail, "held_out_overlaps": len(frames) < min(num_samples, MIN_SAMPLES) + held_out,
                   "input": {"mean": mean, "std": std, "channels": channels, "source_layout": layout,
                             "format": imported.fmt, "import_notes": imported.notes}})
    scale, zero = report["input_quantization"]
    float_mean, float_std = mean, std
    raw_ok = mean is None and std is None and abs(scale - 1.0) < 1e-6 and zero == (0 if io_dtype == "uint8" else -128)
    if not raw_ok and mean is None and std is None:
        mean, std = (0.0,), (1.0,)  # float input is raw pixels; let to_input_tensor quantize
    base = {"name": out.stem, "file": out.name, "input_size": size, "decoder": decoder, "schema": schema,
            "resize": mode, "mean": mean, "std": std, "channels": channels, "decoder_params": params, "device": "cpu",
            "edgetpu_twin": f"{out.stem}_edgetpu",
            "description": f"full-int8 ({io_dtype} I/O) quantization of {model.name} ({imported.fmt}, "
                           f"{layout.upper()} input in the original) with {len(calib)} images"}
    merged = {**(src_m.to_dict() if src_m else {}), **base, "url": "", "sha256": ""}
    manifest: Manifest = manifest_from_dict({k: v for k, v in merged.items() if v is not None}, origin=str(out))
    # The float twin, so `edgepose-tools evaluate --model FLOAT --model2 INT8` can compare them.
    float_path = out.with_name(out.stem.removesuffix("_int8") + "_float.tflite")
    float_m = manifest.with_(name=float_path.stem, file=float_path.name, edgetpu_twin="",
                             mean=float_mean, std=float_std,
                             description=f"float32 conversion of {model.name} (the int8 model's reference)")
    rep_path, fig_path = out.with_name(out.stem + "_report.json"), out.with_name(out.stem + "_report.png")
    overlay_path = out.with_name(out.stem + "_overlay.png")
    report["overlay"] = overlay_path.name
    check_stop()  # a Ctrl-C that TensorFlow swallowed mid-conversion still stops before any file
    written: list[Path] = []
    try:
        for path, data in ((out, int8_bytes), (float_path, float_bytes)):
            written.append(path)
            path.write_bytes(data)
        written.append(out.with_suffix(".toml"))
        man_path = write_manifest(manifest, out.with_suffix(".toml"))
        written.append(float_path.with_suffix(".toml"))
        write_manifest(float_m, float_path.with_suffix(".toml"))
        written += [rep_path, fig_path, overlay_path]
        overlay(float_bytes, int8_bytes, check[-1], size, decoder, {"schema": schema, **params}, mean, std,
                overlay_path)
        write_report(report, rep_path, fig_path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return QuantizeResult(out, man_path, rep_path, fig_path, report, float_path, len(calib), num_samples,
                          len(check), overlay_path)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quantize", help="full-int8 quantization with real images + a float-vs-int8 report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="the trained model: a .keras file, a SavedModel or TF.js folder, "
                   "an .onnx, a PyTorch checkpoint (with --factory) or a float .tflite")
    p.add_argument("--representative", required=True, help="image folder, video file or TFRecord file/folder")
    p.add_argument("--samples", type=positive_int, default=100, help="representative images for calibration")
    p.add_argument("--io", default="uint8", choices=IO_DTYPES, help="input/output type of the int8 model")
    p.add_argument("--output", type=Path, help="output .tflite (default: MODEL_int8.tflite next to the model)")
    p.add_argument("--held-out", type=positive_int, default=8, help="images kept out of calibration for the report")
    p.add_argument("--decoder", help="decoder kind, when the model has no manifest")
    p.add_argument("--schema", help="keypoint schema, when the model has no manifest")
    p.add_argument("--mean", type=float, nargs="+", metavar="M",
                   help="input normalisation (pixel - mean) / std, 1 or 3 values in --channels order "
                        "(default: the model's manifest, else raw 0..255 pixels)")
    p.add_argument("--std", type=float, nargs="+", metavar="S", help="see --mean")
    p.add_argument("--channels", choices=("rgb", "bgr"), help="channel order the model was trained on (default rgb)")
    p.add_argument("--layout", choices=("nhwc", "nchw"),
                   help="layout of the original model's input (default: detected; the int8 model is NHWC)")
    p.add_argument("--outputs", type=_output_names, metavar="NAME[,NAME...]",
                   help="cut the graph at these tensors (TF.js/SavedModel/ONNX names); default: the model's outputs")
    p.add_argument("--input-size", type=_hw, metavar="HxW",
                   help="input size for models with a dynamic input (e.g. 256x256 for MoveNet MultiPose)")
    p.add_argument("--clip", type=_clips, metavar="NAME=LO:HI[,...]",
                   help="bound these outputs to [LO, HI] so int8 spends its steps there (TF.js/SavedModel models)")
    p.add_argument("--factory", metavar="MODULE:CALLABLE",
                   help="PyTorch only: the function that builds the network the checkpoint's state_dict is for")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _output_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: give tensor names separated by commas")
    return names


def _clips(text: str) -> dict[str, tuple[float, float]]:
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"(.+)=\s*(-?[\d.]+)\s*:\s*(-?[\d.]+)", item)
        if not m or not float(m.group(2)) < float(m.group(3)):
            raise argparse.ArgumentTypeError(f"{item!r}: expected NAME=LO:HI with LO < HI, e.g. head/BiasAdd=-2:2")
        out[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)))
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=LO:HI")
    return out


def _hw(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HEIGHTxWIDTH, e.g. 256x256")
    return int(m.group(1)), int(m.group(2))


def quantize_args(args: argparse.Namespace, output: Path | None = None) -> QuantizeResult:
    """``quantize()`` with the parsed ``quantize`` flags (``build`` takes the same ones)."""
    return quantize(args.model, args.representative, output or args.output, num_samples=args.samples,
                    io_dtype=args.io, decoder=args.decoder, schema=args.schema, held_out=args.held_out,
                    progress=not args.no_progress, mean=args.mean, std=args.std, channels=args.channels,
                    layout=args.layout,
                    import_options={k: v for k, v in (("outputs", args.outputs), ("input_size", args.input_size),
                                                      ("clip", args.clip), ("factory", args.factory)) if v})


def describe_calibration(r: QuantizeResult, source: str | Path) -> str:
    """One line: the calibration set, how many images of how many asked for, and the held-out ones."""
    short = f" ({r.calibration} of {r.requested} requested: the set has no more)" if r.calibration < r.requested else ""
    overlap = ", overlapping calibration" if r.report.get("held_out_overlaps") else ""
    return f"{r.calibration} images from {source}{short}; {r.held_out} held out for the report{overlap}"


def run(args: argparse.Namespace) -> int:
    r = quantize_args(args)
    print(f"calibration: {describe_calibration(r, args.representative)}")
    print(f"wrote {r.model_path} ({r.model_path.stat().st_size} bytes), {r.manifest_path}, {r.report_path}, "
          f"{r.figure_path}, {r.overlay_path}, and the float twin {r.float_model_path}")
    from tools.quant_report import format_lines

    print("\n".join(format_lines(r.report)))
    return 0
