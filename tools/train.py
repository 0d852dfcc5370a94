"""Train a heatmap pose model on TFRecord shards and export it for the edgepose pipeline.

Foreground-weighted heatmap MSE (summed over stacks for the hourglass: intermediate
supervision), Adam, ReduceLROnPlateau, best-val and last checkpoints, TensorBoard logs,
resume from the last checkpoint, a backbone started from ImageNet or a local weights
file (``pretrained``), fine-tuning from a checkpoint (``init``), MirroredStrategy on
several GPUs and MultiWorkerMirroredStrategy on several machines (``tools.distribute``,
``$TF_CONFIG``). The training model
has a dynamic batch; the exported model is rebuilt with a static batch of 1 (what the
Edge TPU compiler needs) and the trained weights, and saved as ``.keras``, a SavedModel
and an edgepose manifest (``<name>.toml``) describing the float model.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgepose.core.errors import ConfigError
from edgepose.core.schemas import get_schema
from tools.argtypes import positive_float, positive_int
from tools.data.pipeline import check_shards, make_dataset
from tools.distribute import strategy, worker_out_dir
from tools.errors import DataError
from tools.models import MODEL_KINDS, build_model
from tools.models.losses import FG_WEIGHT, foreground_weighted_mse, loss_class

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything one training run needs; ``out_dir`` receives checkpoints, logs and exports."""

    train_data: list[str]
    out_dir: str
    schema: str = "mpii16"
    val_data: list[str] | None = None
    model: str = "simple_baselines"
    input_size: tuple[int, int] = (256, 256)
    alpha: float = 1.0
    head_filters: int = 256
    num_stacks: int = 4
    num_filters: int = 256
    sigma: float = 1.0
    batch_size: int = 16
    epochs: int = 100
    steps_per_epoch: int | None = None
    val_steps: int | None = None
    learning_rate: float = 1e-3
    fg_weight: float = FG_WEIGHT
    resume: bool = False
    pretrained: str | None = None  # backbone weights: "imagenet" or a weights file
    init: str | None = None  # a checkpoint (.keras or .weights.h5) to start from
    name: str = "edgepose_pose"
    seed: int | None = None
    verbose: int = 1

    def model_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"input_size": tuple(self.input_size),
                              "num_joints": get_schema(self.schema).num_keypoints}
        if self.model == "simple_baselines":
            kw.update(alpha=self.alpha, head_filters=self.head_filters)
        else:
            kw.update(num_stacks=self.num_stacks, num_filters=self.num_filters)
        return kw


@dataclass
class TrainResult:
    """Where the exported model went and how the loss moved (per epoch)."""

    keras_path: Path
    saved_model_dir: Path
    manifest_path: Path
    history: dict[str, list[float]] = field(default_factory=dict)
    initial_epoch: int = 0


def _validate(cfg: TrainConfig) -> Path:
    out = Path(cfg.out_dir)
    if not out.parent.is_dir():
        raise DataError(f"output folder {out}: parent {out.parent} does not exist; create it first")
    if out.exists() and not out.is_dir():
        raise DataError(f"output folder {out} is a file; pass a folder for checkpoints and exports")
    if cfg.model not in MODEL_KINDS:
        raise ConfigError(f"model {cfg.model!r}; expected one of {', '.join(MODEL_KINDS)}")
    get_schema(cfg.schema)
    for key in ("batch_size", "epochs", "steps_per_epoch", "val_steps"):
        value = getattr(cfg, key)
        if value is not None and value < 1:  # steps 0 would make Keras loop forever
            raise ConfigError(f"{key} = {value}; expected a positive integer")
    for key in ("sigma", "learning_rate", "alpha", "fg_weight"):
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"{key} = {getattr(cfg, key)}; expected a positive number")
    if cfg.init and cfg.resume:
        raise ConfigError("--init starts a new run from a checkpoint, --resume continues this one; use one")
    for flag, value in (("--pretrained", cfg.pretrained), ("--init", cfg.init)):
        if value and value != "imagenet" and not Path(value).is_file():
            what = "imagenet or a weights file" if flag == "--pretrained" else "a .keras checkpoint"
            raise DataError(f"{flag} {value}: no such file; give {what}")
    if cfg.init and Path(cfg.init).suffix != ".keras" and not cfg.init.endswith(".weights.h5"):
        raise DataError(f"--init {cfg.init}: expected a .keras checkpoint (e.g. <out>/checkpoints/best.keras) "
                        "or a .weights.h5 file")
    if cfg.init and cfg.pretrained:
        raise ConfigError("--init loads every weight, --pretrained only the backbone's; use one")
    check_shards(cfg.train_data, cfg.schema)
    if cfg.val_data:
        check_shards(cfg.val_data, cfg.schema)
    return out


def _datasets(cfg: TrainConfig, heatmap_size: tuple[int, int], num_outputs: int) -> tuple[Any, Any]:
    common = dict(schema=cfg.schema, input_size=tuple(cfg.input_size), heatmap_size=heatmap_size,
                  sigma=cfg.sigma, batch_size=cfg.batch_size, seed=cfg.seed)
    train = make_dataset(cfg.train_data, augment=True, shuffle=1024,
                         repeat=cfg.steps_per_epoch is not None, **common)
    val = make_dataset(cfg.val_data, **common) if cfg.val_data else None
    if num_outputs > 1:  # the same target for every stack: intermediate supervision
        train = train.map(lambda x, y: (x, (y,) * num_outputs))
        val = val.map(lambda x, y: (x, (y,) * num_outputs)) if val is not None else None
    return train, val


class _EpochState:
    """Writes ``state.json`` (the next epoch to run) after each epoch, for resume."""

    @staticmethod
    def callback(path: Path) -> Any:
        import keras

        class Save(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                path.write_text(json.dumps({"epoch": epoch + 1}), encoding="utf-8")

        return Save()


def _resume_epoch(state: Path) -> int:
    """The next epoch recorded in ``state.json`` (0 when there is none)."""
    if not state.is_file():
        return 0
    try:
        epoch = json.loads(state.read_text(encoding="utf-8"))["epoch"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        epoch = None
    if not isinstance(epoch, int) or epoch < 0:
        raise DataError(f"cannot resume: {state} is damaged; delete it (training restarts its epoch count) "
                        "or train without --resume")
    return epoch


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) and export; see the module docstring."""
    out = _validate(config)  # before importing Keras: bad input fails fast
    import keras

    strat = strategy()  # first: a multi-worker strategy must exist before other TF ops
    out.mkdir(exist_ok=True)
    out = worker_out_dir(out)  # a cluster's other workers write beside the chief's
    out.mkdir(exist_ok=True)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    last, best, state = ckpt_dir / "last.keras", ckpt_dir / "best.keras", ckpt_dir / "state.json"
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str), encoding="utf-8")
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    loss_class()  # registers the loss for load_model

    with strat.scope():
        model, initial_epoch = initial_model(config, last, state)
    heatmap_size = tuple(int(v) for v in model.outputs[-1].shape[1:3])
    train_ds, val_ds = _datasets(config, heatmap_size, len(model.outputs))
    monitor = "val_loss" if val_ds is not None else "loss"
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(last)),
        keras.callbacks.ModelCheckpoint(str(best), monitor=monitor, save_best_only=True),
        _EpochState.callback(state),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=5, min_lr=1e-6),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=initial_epoch > 0),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / "logs")))
    else:
        log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard); "
                    "history.csv still records every epoch")
    history: dict[str, list[float]] = {}
    if initial_epoch < config.epochs:
        h = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=initial_epoch,
                      steps_per_epoch=config.steps_per_epoch, validation_steps=config.val_steps,
                      callbacks=callbacks, verbose=config.verbose)
        history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
    weights_from = keras.models.load_model(best) if best.is_file() else model
    return _export(config, out, weights_from.get_weights(), history, initial_epoch)


def initial_model(config: TrainConfig, last: Path, state: Path) -> tuple[Any, int]:
    """The compiled model to train and its first epoch: resumed from ``last`` (weights,
    optimizer, epoch from ``state``), else built, its backbone from ``pretrained`` or
    every weight from ``init``. Call it inside the strategy's scope."""
    import keras

    if config.resume and last.is_file():
        epoch = _resume_epoch(state)
        try:
            model = keras.models.load_model(last)
        except (ValueError, OSError) as err:
            raise DataError(f"cannot resume: checkpoint {last} is damaged ({str(err).splitlines()[0][:120]}); "
                            "delete it or train without --resume") from None
        log.info("resuming from %s at epoch %d", last, epoch)
        return model, epoch
    model = _build_pretrained(config)
    if config.init:
        _load_init(model, Path(config.init))
        log.info("starting from the weights of %s", config.init)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=[foreground_weighted_mse(config.fg_weight)] * len(model.outputs))
    return model, 0


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:160]


def _build_pretrained(config: TrainConfig) -> Any:
    """``build_model`` with the backbone weights ``pretrained`` names."""
    weights = config.pretrained
    if weights is None:
        return build_model(config.model, **config.model_kwargs())
    if config.model != "simple_baselines":
        if weights == "imagenet":
            raise ConfigError(f"--pretrained imagenet: {config.model} has no ImageNet backbone; train it "
                              "from scratch, or pass --pretrained PATH (weights of this network)")
        model = build_model(config.model, **config.model_kwargs())
        try:
            model.load_weights(weights)
        except (ValueError, OSError, KeyError) as err:
            raise DataError(f"--pretrained {weights}: not weights of this {config.model} "
                            f"({_first_line(err)})") from None
        return model
    try:
        return build_model(config.model, backbone_weights=weights, **config.model_kwargs())
    except ConfigError:
        raise
    except Exception as err:  # Keras raises a bare Exception for a failed download
        if weights == "imagenet":
            raise DataError(_imagenet_failure(str(err))) from None
        raise DataError(f"--pretrained {weights}: not MobileNetV2 backbone weights for alpha {config.alpha}, "
                        f"input {config.input_size[0]}x{config.input_size[1]} ({_first_line(err)})") from None


def _imagenet_failure(text: str) -> str:
    """One line for a failed download of Keras' weights: the file, why, the fix."""
    import re

    url = re.search(r"https?://\S+?\.h5", text)
    why = text.rsplit("--", 1)[-1].strip() if "--" in text else _first_line(Exception(text))
    if url is None:
        return f"--pretrained imagenet: cannot get the MobileNetV2 ImageNet weights ({why}); pass --pretrained PATH"
    return (f"--pretrained imagenet: cannot download the MobileNetV2 ImageNet weights "
            f"{url.group(0).rsplit('/', 1)[-1]} ({why}); without internet, fetch {url.group(0)} "
            "elsewhere into ~/.keras/models/ here, or pass --pretrained PATH to the file")


def _load_init(model: Any, path: Path) -> None:
    """Every weight of ``model`` from the checkpoint at ``path``; one line when it does not fit."""
    import keras

    try:
        if path.suffix == ".keras":
            model.set_weights(keras.models.load_model(path, compile=False).get_weights())
        else:
            model.load_weights(path)
    except (ValueError, OSError, KeyError) as err:
        raise DataError(f"--init {path}: its weights do not fit this {model.name} (same --model, "
                        f"--input-size, --alpha/--head-filters or --stacks/--filters and --schema "
                        f"as the run that wrote it?): {_first_line(err)}") from None


def export_model(config: TrainConfig, weights: list[Any]) -> Any:
    """The batch-1 static-shape twin of the training model with ``weights``; one output."""
    import keras

    model = build_model(config.model, batch_size=1, **config.model_kwargs())
    model.set_weights(weights)
    if len(model.outputs) > 1:  # hourglass: the last stack is the prediction
        model = keras.Model(model.inputs, model.outputs[-1], name=model.name)
    return model


def _export_saved_model(model: Any, path: Path, input_size: tuple[int, int]) -> None:
    """A SavedModel whose ``serving_default`` runs the model in inference mode on [1, h, w, 3].

    ``model.export()`` traces BatchNormalization with batch statistics and a dynamic batch:
    converted to TFLite that gives MEAN/RSQRT and VAR_HANDLE ops that split the Edge TPU graph.
    """
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=lambda x: model(x, training=False),
                         input_signature=[tf.TensorSpec((1, *input_size, 3), tf.float32, name="image")])
    archive.write_out(str(path), verbose=False)


def _export(config: TrainConfig, out: Path, weights: list[Any], history: dict[str, list[float]],
            initial_epoch: int) -> TrainResult:
    from edgepose.models.registry import Manifest, sha256_file, write_manifest

    model = export_model(config, weights)
    keras_path = out / f"{config.name}.keras"
    model.save(keras_path)
    saved_model_dir = out / f"{config.name}_saved_model"
    h, w = (int(v) for v in config.input_size)
    _export_saved_model(model, saved_model_dir, (h, w))
    hh, hw = (int(v) for v in model.outputs[0].shape[1:3])
    manifest = Manifest(
        name=config.name,
        file=keras_path.name,
        input_size=(h, w),
        decoder="heatmap",
        schema=config.schema,
        sha256=sha256_file(keras_path),
        description=(f"{config.model} float model trained by edgepose-tools train; raw RGB 0..255 input "
                     f"(normalised inside), {hh}x{hw} heatmaps, quantize before use on the Edge TPU"),
        device="cpu",
        resize="letterbox",
        interpolation="bilinear",
    )
    manifest_path = write_manifest(manifest, out / f"{config.name}.toml")
    return TrainResult(keras_path, saved_model_dir, manifest_path, history, initial_epoch)


# --- CLI ----------------------------------------------------------------------------

def parse_size(text: str) -> tuple[int, int]:
    """'256' -> (256, 256); '256x192' -> (256, 192) as (height, width)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"input size {text!r}: expected N or HxW, e.g. 256 or 256x192")
    return parts[0], parts[1]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to an ``edgepose-tools`` subparser set."""
    p = subparsers.add_parser("train", help="train a heatmap pose model on TFRecords and export it",
                              description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train", nargs="+", required=True, help="training TFRecords: folders, files or globs")
    p.add_argument("--val", nargs="+", help="validation TFRecords (best checkpoint by val_loss)")
    p.add_argument("--out", required=True, help="output folder: checkpoints/, logs/, <name>.keras, ...")
    p.add_argument("--schema", default="mpii16", choices=["mpii16", "coco17"])
    p.add_argument("--model", default="simple_baselines", choices=list(MODEL_KINDS))
    p.add_argument("--input-size", type=parse_size, default=(256, 256), help="N or HxW")
    p.add_argument("--alpha", type=positive_float, default=1.0, help="MobileNetV2 width (simple_baselines)")
    p.add_argument("--head-filters", type=positive_int, default=256, help="upsampling head width (simple_baselines)")
    p.add_argument("--stacks", type=positive_int, default=4, help="hourglass stacks")
    p.add_argument("--filters", type=positive_int, default=256, help="hourglass width")
    p.add_argument("--sigma", type=positive_float, default=1.0, help="Gaussian sigma in heatmap pixels")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--epochs", type=positive_int, default=100)
    p.add_argument("--steps-per-epoch", type=positive_int, help="default: one pass over the training data")
    p.add_argument("--val-steps", type=positive_int)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--fg-weight", type=positive_float, default=FG_WEIGHT, help="loss weight where target > 0")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.keras")
    p.add_argument("--pretrained", metavar="imagenet|PATH",
                   help="backbone weights: Keras' ImageNet MobileNetV2 (simple_baselines; downloaded once "
                   "into ~/.keras/models) or a local weights file; recommended, see docs/train.md")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune: start every weight from this .keras checkpoint (a new run: epoch 0, "
                   "fresh optimizer)")
    p.add_argument("--name", default="edgepose_pose", help="exported model name")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    result = train(TrainConfig(
        train_data=args.train, val_data=args.val, out_dir=args.out, schema=args.schema, model=args.model,
        input_size=args.input_size, alpha=args.alpha, head_filters=args.head_filters, num_stacks=args.stacks,
        num_filters=args.filters, sigma=args.sigma, batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, val_steps=args.val_steps, learning_rate=args.lr,
        fg_weight=args.fg_weight, resume=args.resume, name=args.name, seed=args.seed,
        pretrained=args.pretrained, init=args.init,
    ))
    print(f"exported {result.keras_path}, {result.saved_model_dir} and {result.manifest_path}")
    return 0
