"""Gaussian heatmap targets, vectorised over joints and pixels with TF ops.

Convention (the tutorial's, and the one edgepose's ``heatmap`` decoder inverts with
``x_in = x_hm * W_in / w``): a joint at input pixel ``x`` sits at heatmap coordinate
``x / stride``. Each visible joint gets an unnormalised
Gaussian (peak 1, ``sigma`` in heatmap pixels) cut to a (6 sigma + 1) square as in the
tutorial, so the foreground-weighted loss sees a small patch; invisible joints and
joints outside the heatmap get an all-zero map.
"""

from __future__ import annotations

from typing import Any


def input_to_heatmap(xy: Any, input_size: tuple[int, int], heatmap_size: tuple[int, int]) -> Any:
    """Map (..., 2) x, y input pixels to heatmap pixels (``x / stride``)."""
    import tensorflow as tf

    stride = tf.constant([input_size[1] / heatmap_size[1], input_size[0] / heatmap_size[0]], tf.float32)
    return tf.cast(xy, tf.float32) / stride


def gaussian_heatmaps(xy: Any, visibility: Any, heatmap_size: tuple[int, int], sigma: float = 1.0) -> Any:
    """(K, 2) heatmap-pixel coordinates + (K,) visibility -> (h, w, K) float32 targets."""
    import tensorflow as tf

    h, w = heatmap_size
    xy = tf.cast(xy, tf.float32)
    vis = tf.cast(visibility, tf.float32)
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= h - 0.5)
    vis = vis * tf.cast(inside, tf.float32)
    dx = tf.range(w, dtype=tf.float32)[None, :, None] - xy[None, None, :, 0]  # (1, w, K)
    dy = tf.range(h, dtype=tf.float32)[:, None, None] - xy[None, None, :, 1]  # (h, 1, K)
    g = tf.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))
    radius = 3.0 * sigma
    patch = tf.cast((tf.abs(dx) <= radius) & (tf.abs(dy) <= radius), tf.float32)
    return g * patch * vis[None, None, :]
