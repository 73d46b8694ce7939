import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lottery.data import pipelines
from tests.helpers import small_convnet

# tf.data is TensorFlow code on every Keras backend: these tests run with the
# TensorFlow suite only, except the one where a Keras model trains on the
# datasets (what JAX users do).


def _data(n=10, size=8, channels=3, seed=0, dtype="uint8"):
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        x = rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)
    else:
        x = rng.random((n, size, size, channels)).astype(dtype)
    return x, np.arange(n)  # label = index, to follow the order


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(xa, xb) and np.array_equal(ya, yb)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )


def test_batches_shapes_dtypes_and_epoch_boundaries():
    x, y = _data(n=10)
    ds = pipelines.train_dataset(x, y, batch_size=4, epochs=2, data_seed=3)
    batches = _batches(ds)
    assert [len(b[1]) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert all(
        b[0].shape[1:] == (8, 8, 3) and b[0].dtype == np.float32 for b in batches
    )
    assert batches[0][1].dtype == np.int32
    for epoch in (batches[:3], batches[3:]):  # each epoch is a permutation
        assert sorted(np.concatenate([b[1] for b in epoch])) == list(range(10))
    order = [np.concatenate([b[1] for b in e]) for e in (batches[:3], batches[3:])]
    assert not np.array_equal(*order)  # reshuffled every epoch
    dropped = pipelines.train_dataset(x, y, batch_size=4, epochs=2, drop_remainder=True)
    assert [len(b[1]) for b in _batches(dropped)] == [4, 4, 4, 4]
    assert pipelines.steps_per_epoch(10, 4) == 3
    assert pipelines.steps_per_epoch(10, 4, drop_remainder=True) == 2


def test_same_seed_gives_identical_batches_independent_of_global_seeds():
    x, y = _data(n=12)
    ds = pipelines.train_dataset(x, y, batch_size=5, data_seed=7, epochs=2)
    first = _batches(ds)
    assert _same(first, _batches(ds))  # iterating twice
    keras.utils.set_random_seed(99)  # seeds model init (and TF's global seed)
    tf.random.set_seed(12345)
    rebuilt = pipelines.train_dataset(x, y, batch_size=5, data_seed=7, epochs=2)
    assert _same(first, _batches(rebuilt))


def test_different_seeds_differ_in_order_and_augmentation():
    x, y = _data(n=32)
    a = _batches(pipelines.train_dataset(x, y, batch_size=32, data_seed=1))
    b = _batches(pipelines.train_dataset(x, y, batch_size=32, data_seed=2))
    assert not np.array_equal(a[0][1], b[0][1])
    # One image, so the order cannot differ: the augmentation does, between
    # epochs and between seeds.
    one = [
        _batches(
            pipelines.train_dataset(x[:1], y[:1], batch_size=1, epochs=8, data_seed=s)
        )
        for s in (1, 2)
    ]
    assert len({image.tobytes() for image, _ in one[0]}) > 1
    assert not _same(one[0], one[1])


def test_resuming_at_an_epoch_reproduces_the_uninterrupted_stream():
    x, y = _data(n=9)
    kwargs = dict(batch_size=4, data_seed=5)
    full = _batches(pipelines.train_dataset(x, y, epochs=3, **kwargs))
    head = _batches(pipelines.train_dataset(x, y, epochs=1, **kwargs))
    tail = _batches(pipelines.train_dataset(x, y, epochs=2, start_epoch=1, **kwargs))
    assert _same(full, head + tail)


def test_cifar_augmentation_is_a_padded_crop_and_flip():
    x, y = _data(n=6, size=6, dtype="float32")
    ds = pipelines.train_dataset(
        x, y, batch_size=6, normalize=False, padding=2, epochs=3, data_seed=11
    )
    offsets, flips = set(), 0
    for images, labels in _batches(ds):
        for image, label in zip(images, labels, strict=True):
            padded = np.pad(x[label], ((2, 2), (2, 2), (0, 0)))
            found = [
                (dy, dx, flip)
                for dy in range(5)
                for dx in range(5)
                for flip in (False, True)
                if np.array_equal(
                    image,
                    padded[dy : dy + 6, dx : dx + 6][:, ::-1]
                    if flip
                    else padded[dy : dy + 6, dx : dx + 6],
                )
            ]
            assert found, "augmented image is not a crop of the padded original"
            offsets.add(found[0][:2])
            flips += found[0][2]
    assert len(offsets) > 5 and 0 < flips < 18


def test_normalization_uses_training_statistics():
    x, y = _data(n=40, size=4)
    mean, std = pipelines.channel_stats(x)
    scaled = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 1, 2)), rtol=1e-5)
    ds = pipelines.train_dataset(x, y, batch_size=40, augment="none")
    images, labels = _batches(ds)[0]
    np.testing.assert_allclose(images, (scaled[labels] - mean) / std, atol=1e-5)
    given = pipelines.eval_dataset(x, y, batch_size=16, mean=0.5, std=0.25)
    images = np.concatenate([b[0] for b in _batches(given)])
    np.testing.assert_allclose(images, (scaled - 0.5) / 0.25, atol=1e-5)


def test_eval_dataset_keeps_order_and_center_crops():
    x, y = _data(n=5, size=16)
    ds = pipelines.eval_dataset(x, y, batch_size=2, normalize=False)
    batches = _batches(ds)
    assert [b[1].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    np.testing.assert_allclose(batches[0][0], x[:2] / 255, atol=1e-6)
    assert _same(batches, _batches(ds))
    cropped = pipelines.eval_dataset(
        x, y, normalize=False, image_size=8, crop_fraction=0.5
    )
    images = _batches(cropped)[0][0]
    assert images.shape == (5, 8, 8, 3)  # no resize needed: center 8x8 of 16x16
    np.testing.assert_allclose(images, x[:, 4:12, 4:12] / 255, atol=1e-6)
    resized = pipelines.eval_dataset(x, y, normalize=False, image_size=(12, 10))
    assert _batches(resized)[0][0].shape == (5, 12, 10, 3)


def test_random_resized_crop():
    x, y = _data(n=8, size=16, dtype="float32")
    ds = pipelines.train_dataset(
        x, y, batch_size=8, augment="random_resized_crop", image_size=(10, 12)
    )
    images, _ = _batches(ds)[0]
    assert images.shape == (8, 10, 12, 3) and np.isfinite(images).all()
    # Full-area, square boxes of a square image: the identity or its mirror image.
    ds = pipelines.train_dataset(
        x,
        y,
        batch_size=8,
        augment="random_resized_crop",
        normalize=False,
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
    )
    images, labels = _batches(ds)[0]
    for image, label in zip(images, labels, strict=True):
        assert np.allclose(image, x[label], atol=1e-5) or np.allclose(
            image, x[label][:, ::-1], atol=1e-5
        )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"data_seed": -1}, "data_seed"),
        ({"epochs": 0}, "epochs"),
        ({"start_epoch": -2}, "start_epoch"),
        ({"augment": "mixup"}, r"augment.*'cifar', 'random_resized_crop'"),
        ({"image_size": 24}, "image_size is only used"),
        ({"augment": "random_resized_crop", "image_size": (0, 4)}, "image_size"),
        ({"augment": "random_resized_crop", "scale": (0.5, 0.1)}, "scale"),
        ({"augment": "random_resized_crop", "ratio": (0, 1)}, "ratio"),
        ({"mean": (0.5, 0.5), "std": 1}, r"one finite number per channel \(3\)"),
        ({"mean": 0.5}, "Give both mean and std"),
        ({"mean": 0.5, "std": 0.0}, "std must be positive"),
        ({"normalize": False, "mean": 0.5, "std": 0.2}, "normalize=False"),
        ({"batch_size": 20, "drop_remainder": True}, "no batch"),
        ({"padding": -1}, "padding"),
    ],
)
def test_train_dataset_argument_errors(kwargs, match):
    x, y = _data(n=10)
    with pytest.raises(ValueError, match=match):
        pipelines.train_dataset(x, y, **kwargs)


@pytest.mark.parametrize(
    "images,labels,match",
    [
        (np.zeros((4, 8, 8, 3, 1), np.uint8), np.arange(4), "shaped"),
        (np.zeros((0, 8, 8, 3), np.uint8), np.arange(0), "non-empty"),
        (np.zeros((4, 8, 8, 3), np.uint8), np.arange(5), "one entry per image"),
        (np.zeros((4, 8, 8, 3), np.int64), np.arange(4), "uint8"),
        (np.zeros((4, 8, 8, 3), np.uint8), np.array(["a"] * 4), "labels"),
    ],
)
def test_bad_arrays_are_value_errors(images, labels, match):
    with pytest.raises(ValueError, match=match):
        pipelines.train_dataset(images, labels)
    with pytest.raises(ValueError, match=match):
        pipelines.eval_dataset(images, labels, normalize=False)


def test_eval_dataset_needs_training_statistics():
    x, y = _data()
    with pytest.raises(ValueError, match="training set's mean and std"):
        pipelines.eval_dataset(x, y)
    with pytest.raises(ValueError, match="batch_size"):
        pipelines.eval_dataset(x, y, batch_size=-4, normalize=False)
    with pytest.raises(ValueError, match="crop_fraction"):
        pipelines.eval_dataset(x, y, normalize=False, image_size=4, crop_fraction=0)


def test_grayscale_and_column_labels_are_accepted():
    x = _data(n=6, channels=1)[0][..., 0]
    ds = pipelines.train_dataset(x, np.arange(6)[:, None], batch_size=3, augment="flip")
    images, labels = _batches(ds)[0]
    assert images.shape == (3, 8, 8, 1) and labels.shape == (3,)
    with pytest.raises(ValueError, match=r"constant in channel\(s\) \[0\]"):
        pipelines.train_dataset(np.zeros_like(x), np.arange(6))


@pytest.mark.backend_neutral
def test_fit_for_several_epochs_with_validation():
    x, y = _data(n=24, size=8)
    y = y % 3
    mean, std = pipelines.channel_stats(x)
    train = pipelines.train_dataset(
        x, y, batch_size=8, data_seed=1, epochs=2, mean=mean, std=std
    )
    test = pipelines.eval_dataset(x[:8], y[:8], mean=mean, std=std)
    model = small_convnet()
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        train,
        epochs=2,
        steps_per_epoch=pipelines.steps_per_epoch(24, 8),
        validation_data=test,
        shuffle=False,  # the dataset is shuffled already (silences a Keras warning)
        verbose=0,
    )
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["val_loss"]).all()
    assert model.evaluate(test, verbose=0)[0] > 0
