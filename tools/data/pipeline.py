"""The tf.data pipeline over TFRecord shards: person crop, resize, flip, heatmap targets.

Crop: a square box of ``scale * 200 * margin`` pixels around ``center`` (the tutorial's
1.25 margin), widened to the input aspect ratio, cut and resized in one
``tf.image.crop_and_resize`` (areas outside the image are black, like letterboxing).
Images stay raw RGB 0..255 floats: the models normalise inside, so the int8 model's
input is the camera image.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tools.data.samples import PIXEL_STD, DataError

MARGIN = 1.25


def resolve_shards(files: str | Path | Sequence[str | Path]) -> list[str]:
    """TFRecord paths from a glob, a folder (all ``*.tfrecord``) or a list of either."""
    items = [files] if isinstance(files, (str, Path)) else list(files)
    found: list[str] = []
    for item in items:
        p = Path(item)
        found += sorted(glob.glob(str(p / "*.tfrecord"))) if p.is_dir() else sorted(glob.glob(str(p)))
    if not found:
        shown = ", ".join(str(i) for i in items) or "nothing"
        raise DataError(f"no TFRecord shards found at {shown}; write them with `edgepose-tools dataset`")
    return found


def check_shards(files: str | Path | Sequence[str | Path], schema: str | None = None) -> list[str]:
    """``resolve_shards``, then read the first example of each shard, so that a file that is
    not a TFRecord, or whose people have another joint count than ``schema``, is a one-line
    DataError before training or calibration starts (not a TensorFlow error mid-run)."""
    import tensorflow as tf

    from edgepose.core.schemas import get_schema

    paths = resolve_shards(files)
    spec = {"visibility": tf.io.VarLenFeature(tf.float32),
            "schema": tf.io.FixedLenFeature([], tf.string, default_value="")}
    examples = 0
    for path in paths:
        try:
            first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
            if first is None:
                continue
            rec = tf.io.parse_single_example(first, spec)
        except tf.errors.OpError as err:
            why = (err.message or type(err).__name__).strip().splitlines()[0]
            why = re.sub(r"\s*\[Op:.*$", "", re.sub(r"\{\{.*?\}\}\s*", "", why)) or type(err).__name__
            raise DataError(f"{path} is not a TFRecord of people ({why}); "
                            "write the shards with `edgepose-tools dataset`") from None
        examples += 1
        joints = int(tf.shape(rec["visibility"].values)[0])
        written = rec["schema"].numpy().decode(errors="replace") or "unknown schema"
        if schema is not None and joints != get_schema(schema).num_keypoints:
            raise DataError(f"{path} holds people with {joints} joints ({written}), not the "
                            f"{get_schema(schema).num_keypoints} of schema {schema}; pass --schema {written} "
                            "or shards written for that schema")
    if not examples:
        raise DataError(f"the TFRecord shards at {', '.join(paths[:3])} hold no examples; "
                        "write them with `edgepose-tools dataset`")
    return paths


def parse_example(serialized: Any) -> dict[str, Any]:
    """Decode one serialized tf.train.Example written by tools.data.tfrecords."""
    import tensorflow as tf

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "joints": tf.io.VarLenFeature(tf.float32),
        "visibility": tf.io.VarLenFeature(tf.float32),
        "center": tf.io.FixedLenFeature([2], tf.float32),
        "scale": tf.io.FixedLenFeature([1], tf.float32),
        "schema": tf.io.FixedLenFeature([], tf.string),
    }
    f = tf.io.parse_single_example(serialized, spec)
    vis = tf.sparse.to_dense(f["visibility"])
    return {
        "image": tf.io.decode_image(f["image/encoded"], channels=3, expand_animations=False),
        "joints": tf.reshape(tf.sparse.to_dense(f["joints"]), [-1, 2]),
        "visibility": vis,
        "center": f["center"],
        "scale": f["scale"][0],
        "schema": f["schema"],
    }


def crop_person(
    rec: dict[str, Any], input_size: tuple[int, int], margin: float = MARGIN
) -> tuple[Any, Any, Any]:
    """Cut the person box out of the image: (image (h, w, 3) float32, joints in input px, visibility)."""
    import tensorflow as tf

    ih, iw = input_size
    image = rec["image"]
    shape = tf.cast(tf.shape(image), tf.float32)
    height, width = shape[0], shape[1]
    box_h = rec["scale"] * PIXEL_STD * margin
    box_w = box_h * (iw / ih)
    cx, cy = rec["center"][0], rec["center"][1]
    x1, y1 = cx - box_w / 2, cy - box_h / 2
    x2, y2 = x1 + box_w, y1 + box_h
    box = tf.stack([y1 / (height - 1), x1 / (width - 1), y2 / (height - 1), x2 / (width - 1)])
    crop = tf.image.crop_and_resize(
        tf.cast(image, tf.float32)[None], box[None], tf.zeros([1], tf.int32), (ih, iw), method="bilinear"
    )[0]
    # crop_and_resize puts the box corners on the first and last output pixel centres.
    xy = (rec["joints"] - tf.stack([x1, y1])) * tf.stack([(iw - 1) / box_w, (ih - 1) / box_h])
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= iw - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= ih - 1)
    vis = rec["visibility"] * tf.cast(inside, tf.float32)
    return crop, xy, vis


def flip(image: Any, xy: Any, vis: Any, flip_index: npt.NDArray[np.int64]) -> tuple[Any, Any, Any]:
    """Mirror the crop left-right and swap left/right joints."""
    import tensorflow as tf

    w = tf.cast(tf.shape(image)[1], tf.float32)
    image = tf.reverse(image, axis=[1])
    xy = tf.stack([w - 1.0 - xy[:, 0], xy[:, 1]], axis=-1)
    idx = tf.constant(flip_index, tf.int32)
    return image, tf.gather(xy, idx), tf.gather(vis, idx)


def make_dataset(
    files: str | Path | Sequence[str | Path],
    schema: str,
    input_size: tuple[int, int] = (256, 256),
    heatmap_size: tuple[int, int] = (64, 64),
    sigma: float = 1.0,
    batch_size: int = 32,
    augment: bool = False,
    shuffle: int = 0,
    repeat: bool = False,
    margin: float = MARGIN,
    with_meta: bool = False,
    seed: int | None = None,
) -> Any:
    """(image (b, h, w, 3) float32 0..255, heatmaps (b, hh, hw, K)) batches from TFRecords.

    ``augment`` flips half the crops (with left/right joint swap). ``with_meta`` adds a
    third element: {"joints": (b, K, 2) input pixels, "visibility": (b, K)}.
    """
    import tensorflow as tf

    from edgepose.core.schemas import get_schema
    from tools.data.heatmaps import gaussian_heatmaps, input_to_heatmap

    sch = get_schema(schema)
    k = sch.num_keypoints
    flip_index = sch.flip_index()
    ds = tf.data.TFRecordDataset(resolve_shards(files), num_parallel_reads=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def load(serialized: Any) -> Any:
        rec = parse_example(serialized)
        tf.debugging.assert_equal(
            tf.shape(rec["visibility"])[0], k,
            message=f"TFRecord joint count does not match schema {schema!r} ({k} joints)",
        )
        image, xy, vis = crop_person(rec, input_size, margin)
        if augment:
            image, xy, vis = tf.cond(
                tf.random.uniform([], seed=seed) < 0.5,
                lambda: flip(image, xy, vis, flip_index),
                lambda: (image, xy, vis),
            )
        image = tf.ensure_shape(image, (*input_size, 3))
        hm = gaussian_heatmaps(input_to_heatmap(xy, input_size, heatmap_size), vis, heatmap_size, sigma)
        hm = tf.ensure_shape(hm, (*heatmap_size, k))
        if with_meta:
            return image, hm, {"joints": tf.ensure_shape(xy, (k, 2)), "visibility": tf.ensure_shape(vis, (k,))}
        return image, hm

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def representative_images(
    files: str | Path | Sequence[str | Path],
    input_size: tuple[int, int],
    count: int = 100,
    margin: float = MARGIN,
) -> Iterator[npt.NDArray[np.uint8]]:
    """Yield up to ``count`` real person crops (h, w, 3) uint8, as the model sees them.

    For int8 calibration: no augmentation, shards in order, each person at most once
    (fewer than ``count`` when the shards hold fewer). Raises DataError when empty.
    """
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(check_shards(files)).map(
        lambda s: crop_person(parse_example(s), input_size, margin)[0],
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    n = 0
    for image in ds.take(count):
        n += 1
        yield np.clip(np.rint(image.numpy()), 0, 255).astype(np.uint8)
    if n == 0:
        raise DataError(f"no images in TFRecords {files}; the representative set is empty")
