"""Seeded ``tf.data`` input pipelines for image classification.

They feed ``model.fit`` / ``model.evaluate`` on every Keras backend (on JAX, Keras
iterates the dataset as numpy batches).

**Determinism.** The training stream is a pure function of ``data_seed``, the
epoch number and the batch size: epoch ``e`` visits the examples in the order of
a stateless random permutation seeded by ``(data_seed, e)``, and batch ``b`` of
epoch ``e`` is augmented (vectorized, one draw per image) with stateless random
ops seeded by ``(data_seed, e, b)``. Nothing depends on TensorFlow's or Keras's
global seed (``keras.utils.set_random_seed`` seeds model initialization, not the
data), on the number of threads, or on how often the dataset was iterated
before. Hence

* the same ``data_seed`` gives identical batches, however often you iterate;
* two runs that share a starting model and differ only in ``data_seed`` differ
  only in SGD noise (data order and augmentation), as the instability / linear
  mode connectivity analysis requires;
* a run resumed at epoch ``k`` (``start_epoch=k``, e.g. after rewinding) sees
  exactly the batches the uninterrupted run saw from epoch ``k`` on.

**Epochs.** Because every iteration of the dataset yields the same stream, a
dataset covering several epochs holds them all: build it with ``epochs=E`` and
pass the number of batches of one epoch to ``fit``::

    stats = pipelines.channel_stats(x_train)
    train = pipelines.train_dataset(x_train, y_train, batch_size=128, data_seed=1,
                                    epochs=160, mean=stats[0], std=stats[1])
    test = pipelines.eval_dataset(x_test, y_test, mean=stats[0], std=stats[1])
    model.fit(train, epochs=160, validation_data=test, shuffle=False,
              steps_per_epoch=pipelines.steps_per_epoch(len(x_train), 128))

(``fit`` keeps one iterator across epochs when ``steps_per_epoch`` is given.) A
one-epoch dataset (the default) used with ``fit(epochs>1)`` and no
``steps_per_epoch`` would replay the same order every epoch.

**Pixels.** ``uint8`` images are scaled to [0, 1]; float images are used as they
are. ``mean`` / ``std`` (per channel) are on that same scale.
:func:`channel_stats` computes them from training images.

**Augmentations** (``augment=``):

* ``"cifar"``: zero-pad ``padding`` (4) pixels on each side, random crop back to
  the input size, random horizontal flip (He et al. 2016; open_lth).
* ``"random_resized_crop"``: torchvision's ``RandomResizedCrop`` (Inception-style):
  a box covering ``scale`` (0.08-1) of the area with a log-uniform aspect ratio
  in ``ratio`` (3/4-4/3), resized bilinearly to ``image_size``, then a random
  horizontal flip. When ten draws give no box that fits, the center crop is
  used. Resizing uses ``tf.image.crop_and_resize``, whose sampling grid puts the
  box's corner pixels on the output's corners (torchvision/PIL resize uses
  half-pixel centers), a sub-pixel difference.
* ``"flip"``: random horizontal flip only. ``"none"``: no augmentation.

:func:`eval_dataset` applies no randomness; with ``image_size`` it resizes the
shorter side to ``image_size / crop_fraction`` and center-crops (the ImageNet
evaluation transform).

The images are held in memory (numpy arrays); there is no file/TFRecord reader.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np

from keras_lottery.errors import MissingExtraError

try:
    import tensorflow as tf
except ImportError as error:  # the JAX and PyTorch backends need no TensorFlow
    raise MissingExtraError(
        "keras_lottery.data.pipelines (seeded tf.data pipelines: data.augment, "
        "data.normalize, seeded data orders) needs TensorFlow: pip install "
        "tensorflow-cpu. Without it, pass NumPy arrays to fit (shuffled by Keras)."
    ) from error

from keras_lottery.config import AUGMENTATIONS
from keras_lottery.data.augment import (
    ALG,
    cifar_crop,
    fold,
    random_flip,
    random_resized_crop,
)
from keras_lottery.data.datasets import channel_stats

#: Per-channel statistics of the full training sets, on the [0, 1] scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------
# Argument checks


def _int(value, what, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}; got {value!r}.")
    return int(value)


def _images_labels(images, labels):
    images = np.asarray(images)
    if images.ndim == 3:  # (N, H, W) grayscale, e.g. MNIST
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0 or 0 in images.shape[1:]:
        raise ValueError(
            "images must be a non-empty array shaped (N, height, width, channels) "
            f"or (N, height, width); got shape {images.shape}."
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"images must be uint8 (0-255) or floating point; got {images.dtype}."
        )
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 0 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must hold one entry per image ({images.shape[0]} images); got "
            f"shape {labels.shape}."
        )
    if np.issubdtype(labels.dtype, np.integer):
        labels = labels.astype(np.int32)
    elif np.issubdtype(labels.dtype, np.floating):
        labels = labels.astype(np.float32)
    else:
        raise ValueError(f"labels must be integers or floats; got {labels.dtype}.")
    return images, labels


def _size(image_size, default):
    if image_size is None:
        return tuple(default)
    if isinstance(image_size, Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        size = tuple(image_size)
    except TypeError:
        size = ()
    if len(size) != 2 or not all(
        isinstance(d, Integral) and not isinstance(d, bool) and d > 0 for d in size
    ):
        raise ValueError(
            f"image_size must be a positive int or (height, width); got {image_size!r}."
        )
    return tuple(int(d) for d in size)


def _range(value, what, low_ok):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (low_ok(lo) and lo <= hi):
        raise ValueError(
            f"{what} must be a pair (low, high) with low <= high; got {value!r}."
        )
    return lo, hi


def _stats(mean, std, channels):
    values = []
    for what, v in (("mean", mean), ("std", std)):
        array = np.asarray(v, dtype=np.float64).reshape(-1)
        if array.size == 1:
            array = np.repeat(array, channels)
        if array.size != channels or not np.all(np.isfinite(array)):
            raise ValueError(
                f"{what} must be one finite number per channel ({channels}); got {v!r}."
            )
        values.append(array.astype(np.float32))
    if np.any(values[1] <= 0):
        raise ValueError(f"std must be positive; got {std!r}.")
    return values


# ----------------------------------------------------------------------------
# Public helpers


def steps_per_epoch(num_examples: int, batch_size: int, drop_remainder=False) -> int:
    """Batches in one epoch of :func:`train_dataset` (pass it to ``fit``)."""
    num_examples = _int(num_examples, "num_examples", 1)
    batch_size = _int(batch_size, "batch_size", 1)
    if drop_remainder:
        return num_examples // batch_size
    return math.ceil(num_examples / batch_size)


def train_dataset(
    images,
    labels,
    *,
    batch_size: int = 128,
    data_seed: int = 0,
    augment: str = "cifar",
    padding: int = 4,
    image_size=None,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    normalize: bool = True,
    mean=None,
    std=None,
    epochs: int = 1,
    start_epoch: int = 0,
    drop_remainder: bool = False,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """Shuffled, augmented, normalized ``(image, label)`` batches for ``epochs``
    epochs starting at epoch ``start_epoch``; a pure function of ``data_seed``.

    ``mean`` / ``std`` default to :func:`channel_stats` of ``images``. With
    ``drop_remainder=False`` (PyTorch's default, as in open_lth) each epoch ends
    with a smaller batch; batches never straddle epochs. ``image_size`` is the
    output size of ``"random_resized_crop"`` (default: the input size) and must
    be left unset for the other augmentations.
    """
    images, labels = _images_labels(images, labels)
    batch_size = _int(batch_size, "batch_size", 1)
    data_seed = _int(data_seed, "data_seed", 0)
    if data_seed >= 2**63:
        raise ValueError(f"data_seed must be below 2**63; got {data_seed}.")
    epochs = _int(epochs, "epochs", 1)
    start_epoch = _int(start_epoch, "start_epoch", 0)
    padding = _int(padding, "padding", 0)
    n, height, width, _ = images.shape
    augmenter = _augmenter(augment, padding, image_size, scale, ratio, height, width)
    if drop_remainder and n < batch_size:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {n} examples, so "
            "drop_remainder=True would leave no batch."
        )
    shift, divide = _normalization(images, normalize, mean, std)

    source = tf.constant(images)
    targets = tf.constant(labels)
    base_seed = tf.constant([data_seed, 0x5EED], dtype=tf.int64)
    to_float = _to_float(images.dtype)

    def one_epoch(epoch):
        epoch_seed = fold(base_seed, epoch)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=fold(epoch_seed, 0), alg=ALG
        )
        augment_seed = fold(epoch_seed, 1)

        def load(step, indices):
            batch = to_float(tf.gather(source, indices))
            seed = fold(augment_seed, step)
            if augmenter is not None:
                batch = augmenter(batch, fold(seed, 0))
            if augment != "none":
                batch = random_flip(batch, fold(seed, 1))
            return (batch - shift) / divide, tf.gather(targets, indices)

        return (
            tf.data.Dataset.from_tensor_slices(order)
            .batch(batch_size, drop_remainder=drop_remainder)
            .enumerate()
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )

    dataset = tf.data.Dataset.range(start_epoch, start_epoch + epochs).flat_map(
        one_epoch
    )
    return _finish(dataset, prefetch)


def _augmenter(augment, padding, image_size, scale, ratio, height, width):
    """The crop of ``augment`` as ``fn(batch, seed)`` (``None`` for flips only
    or no augmentation), its arguments checked."""
    if augment not in AUGMENTATIONS:
        raise ValueError(
            f"augment must be one of {list(AUGMENTATIONS)}; got {augment!r}."
        )
    if augment != "random_resized_crop" and image_size is not None:
        raise ValueError(
            f"image_size is only used by augment='random_resized_crop'; got "
            f"augment={augment!r}. Resize the arrays beforehand instead."
        )
    if augment == "cifar":
        return cifar_crop(padding, height, width)
    if augment == "random_resized_crop":
        out_size = _size(image_size, (height, width))
        scale = _range(scale, "scale", lambda lo: 0 < lo <= 1)
        if scale[1] > 1:
            raise ValueError(f"scale must lie in (0, 1]; got {scale!r}.")
        ratio = _range(ratio, "ratio", lambda lo: lo > 0)
        return random_resized_crop(scale, ratio, height, width, out_size)
    return None


def eval_dataset(
    images,
    labels,
    *,
    batch_size: int = 256,
    normalize: bool = True,
    mean=None,
    std=None,
    image_size=None,
    crop_fraction: float = 0.875,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """Un-shuffled, un-augmented, normalized batches (the last may be smaller).

    With ``normalize=True``, pass the *training* set's ``mean`` and ``std``.
    With ``image_size``, the shorter side is resized (bilinear) to
    ``round(image_size / crop_fraction)`` and the center ``image_size`` crop is
    kept (use ``crop_fraction=1`` to resize without cropping margins).
    """
    images, labels = _images_labels(images, labels)
    batch_size = _int(batch_size, "batch_size", 1)
    if normalize and (mean is None or std is None):
        raise ValueError(
            "eval_dataset needs the training set's mean and std (see "
            "pipelines.channel_stats), or normalize=False."
        )
    shift, divide = _normalization(images, normalize, mean, std)
    _, height, width, channels = images.shape
    to_float = _to_float(images.dtype)
    resize = None
    if image_size is not None:
        out_h, out_w = _size(image_size, None)
        if (
            isinstance(crop_fraction, bool)
            or not isinstance(crop_fraction, (int, float))
            or not 0 < crop_fraction <= 1
        ):
            raise ValueError(f"crop_fraction must be in (0, 1]; got {crop_fraction!r}.")
        short = round(max(out_h, out_w) / crop_fraction)
        factor = short / min(height, width)
        resize = (
            max(out_h, round(height * factor)),
            max(out_w, round(width * factor)),
        )

    def load(batch, label):
        batch = to_float(batch)
        if resize is not None:
            batch = tf.image.resize(batch, resize, method="bilinear")
            top = (resize[0] - out_h) // 2
            left = (resize[1] - out_w) // 2
            batch = batch[:, top : top + out_h, left : left + out_w]
            batch.set_shape((None, out_h, out_w, channels))
        return (batch - shift) / divide, label

    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .batch(batch_size)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    )
    return _finish(dataset, prefetch)


# ----------------------------------------------------------------------------
# Internals


def _to_float(dtype):
    if dtype == np.uint8:
        return lambda image: tf.cast(image, tf.float32) / 255.0
    return lambda image: tf.cast(image, tf.float32)


def _normalization(images, normalize, mean, std):
    channels = images.shape[-1]
    if not normalize:
        if mean is not None or std is not None:
            raise ValueError("mean/std were given but normalize=False.")
        return np.zeros(channels, np.float32), np.ones(channels, np.float32)
    if (mean is None) != (std is None):
        raise ValueError("Give both mean and std, or neither.")
    if mean is None:
        mean, std = channel_stats(images)
        if np.any(std <= 0):
            raise ValueError(
                f"The images are constant in channel(s) {np.flatnonzero(std <= 0)}, "
                "so their std is 0; pass mean and std, or normalize=False."
            )
    return _stats(mean, std, channels)


def _finish(dataset, prefetch):
    options = tf.data.Options()
    options.deterministic = True
    dataset = dataset.with_options(options)
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset
