"""Seeded, stateless image augmentations on batches (``tf.random`` stateless
ops with a fixed algorithm, so a stream depends only on its seed): the CIFAR
pad-and-crop, torchvision's ``RandomResizedCrop``, horizontal flips.

Example:

>>> seed = tf.constant([0, 1], tf.int64)
>>> batch = cifar_crop(4, 32, 32)(images, seed)
>>> batch = random_flip(batch, fold(seed, 1))
"""

from __future__ import annotations

import math

import tensorflow as tf

#: The stateless RNG algorithm, fixed so a stream does not depend on the device.
ALG = "philox"


def fold(seed, data):
    """A new stateless seed derived from ``seed`` and the integer ``data``."""
    return tf.random.experimental.stateless_fold_in(
        seed, tf.cast(data, tf.int64), alg=ALG
    )


def uniform(seed, shape, minval=0.0, maxval=1.0):
    return tf.random.stateless_uniform(
        shape, seed=seed, minval=minval, maxval=maxval, alg=ALG
    )


def random_flip(batch, seed):
    """Flips each image of ``batch`` left-right with probability 1/2."""
    flip = uniform(seed, tf.shape(batch)[:1]) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(batch, axis=[2]), batch)


def crop(batch, top, left, height, width):
    """Per-image crops: ``batch[i, top[i]:top[i]+height, left[i]:left[i]+width]``."""
    rows = top[:, None] + tf.range(height)[None, :]
    cols = left[:, None] + tf.range(width)[None, :]
    batch = tf.gather(batch, rows, axis=1, batch_dims=1)
    return tf.gather(batch, cols, axis=2, batch_dims=1)


def cifar_crop(padding, height, width):
    """Zero-pads ``padding`` pixels and crops each image back at a random place."""

    def apply(batch, seed):
        if not padding:
            return batch
        batch = tf.pad(batch, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
        size = tf.shape(batch)[:1]
        offsets = [
            tf.cast(
                tf.floor(uniform(fold(seed, k), size) * (2 * padding + 1)), tf.int32
            )
            for k in (0, 1)
        ]
        return crop(batch, offsets[0], offsets[1], height, width)

    return apply


def random_resized_crop(scale, ratio, height, width, out_size, attempts=10):
    """torchvision's ``RandomResizedCrop``, vectorized over the batch: up to
    ``attempts`` draws of (area fraction in ``scale``, log-uniform aspect ratio
    in ``ratio``); the first box that fits is cut out and resized bilinearly
    (``tf.image.crop_and_resize``); if none fits, the center crop clamped to
    ``ratio``."""
    area = float(height * width)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback = (round(width / ratio[0]), width)
    elif in_ratio > ratio[1]:
        fallback = (height, round(height * ratio[1]))
    else:
        fallback = (height, width)

    def apply(batch, seed):
        size = tf.shape(batch)[0]
        target = uniform(fold(seed, 0), [size, attempts], *scale) * area
        aspect = tf.exp(uniform(fold(seed, 1), [size, attempts], *log_ratio))
        w = tf.round(tf.sqrt(target * aspect))
        h = tf.round(tf.sqrt(target / aspect))
        fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
        first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
        found = tf.reduce_any(fits, axis=1)
        h = tf.where(found, tf.gather(h, first, batch_dims=1), float(fallback[0]))
        w = tf.where(found, tf.gather(w, first, batch_dims=1), float(fallback[1]))
        top = tf.floor(uniform(fold(seed, 2), [size]) * (height - h + 1))
        left = tf.floor(uniform(fold(seed, 3), [size]) * (width - w + 1))
        top = tf.where(found, top, tf.floor((height - h) / 2))
        left = tf.where(found, left, tf.floor((width - w) / 2))
        # crop_and_resize maps normalized y to y * (height - 1) pixels.
        dy, dx = float(max(height - 1, 1)), float(max(width - 1, 1))
        boxes = tf.stack(
            [top / dy, left / dx, (top + h - 1) / dy, (left + w - 1) / dx], axis=1
        )
        return tf.image.crop_and_resize(
            batch, boxes, tf.range(size), out_size, method="bilinear"
        )

    return apply
