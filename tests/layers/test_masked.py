import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.layers import (
    MaskedConv1D,
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
)
from tests.conftest import tensorflow_only
from tests.helpers import classification_data, mlp

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]

CASES = [
    (MaskedDense, keras.layers.Dense, dict(units=5), (4, 6)),
    (MaskedConv1D, keras.layers.Conv1D, dict(filters=4, kernel_size=3), (2, 9, 3)),
    (MaskedConv2D, keras.layers.Conv2D, dict(filters=4, kernel_size=3), (2, 7, 7, 3)),
    (
        MaskedDepthwiseConv2D,
        keras.layers.DepthwiseConv2D,
        dict(kernel_size=3, depth_multiplier=2),
        (2, 7, 7, 3),
    ),
]
IDS = [case[0].__name__ for case in CASES]


def _built(cls, kwargs, shape):
    layer = cls(**kwargs)
    layer.build((None,) + shape[1:])
    return layer


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_mask_is_non_trainable_bool_variable_shaped_like_kernel(
    cls, plain_cls, kwargs, shape
):
    layer = _built(cls, kwargs, shape)
    assert layer.mask.dtype == "bool"
    assert not layer.mask.trainable
    assert tuple(layer.mask.shape) == tuple(layer.raw_kernel.shape)
    assert layer.get_mask().all()
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
    assert isinstance(layer, plain_cls)


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_forward_uses_kernel_times_mask(cls, plain_cls, kwargs, shape, rng):
    layer = _built(cls, kwargs, shape)
    plain = _built(plain_cls, kwargs, shape)
    mask = rng.random(tuple(layer.raw_kernel.shape)) > 0.4
    kernel = rng.normal(size=mask.shape).astype("float32")
    bias = rng.normal(size=tuple(layer.bias.shape)).astype("float32")
    layer.raw_kernel.assign(kernel)
    layer.bias.assign(bias)
    layer.set_mask(mask)
    plain.set_weights([kernel * mask, bias])
    x = rng.normal(size=shape).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)),
        keras.ops.convert_to_numpy(plain(x)),
        rtol=1e-5,
        atol=1e-5,
    )
    stored = keras.ops.convert_to_numpy(layer.raw_kernel)
    assert np.all(stored[~mask] == 0)
    np.testing.assert_array_equal(stored[mask], kernel[mask])


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_gradient_is_the_plain_gradient_times_mask(cls, plain_cls, kwargs, shape, rng):
    # One plain-SGD step (lr 1) moves each weight by minus its gradient: pruned
    # entries must not move at all, survivors exactly as in the plain layer
    # holding kernel * mask.
    layer = _built(cls, kwargs, shape)
    plain = _built(plain_cls, kwargs, shape)
    mask = rng.random(tuple(layer.raw_kernel.shape)) > 0.4
    kernel = rng.normal(size=mask.shape).astype("float32")
    layer.raw_kernel.assign(kernel)
    layer.set_mask(mask)
    plain.set_weights([kernel * mask, keras.ops.convert_to_numpy(layer.bias)])
    x = rng.normal(size=shape).astype("float32")
    y = rng.normal(size=(shape[0],) + tuple(layer(x).shape[1:])).astype("float32")
    moved = {}
    for name, lyr in (("masked", layer), ("plain", plain)):
        model = keras.Sequential([keras.Input(shape[1:]), lyr])
        model.compile(keras.optimizers.SGD(1.0), "mse")
        start = keras.ops.convert_to_numpy(lyr.weights[0]).copy()
        model.train_on_batch(x, y)
        moved[name] = keras.ops.convert_to_numpy(lyr.weights[0]) - start
    assert np.all(moved["masked"][~mask] == 0)
    assert np.any(moved["plain"][~mask] != 0)  # the plain gradient is not zero there
    np.testing.assert_allclose(
        moved["masked"][mask], moved["plain"][mask], rtol=1e-5, atol=1e-6
    )


def test_forward_never_reads_stale_values_at_pruned_positions(rng):
    # A raw write that bypasses set_mask (e.g. model.set_weights) leaves stale
    # values in the stored kernel; the output must still be that of kernel * mask.
    layer = MaskedDense(4)
    layer.build((None, 5))
    mask = rng.random((5, 4)) > 0.5
    layer.set_mask(mask)
    stale = rng.normal(size=(5, 4)).astype("float32")
    layer.raw_kernel.assign(stale)
    x = rng.normal(size=(3, 5)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), x @ (stale * mask), rtol=1e-5, atol=1e-5
    )


def test_loading_a_file_with_stale_pruned_values_zeroes_them(tmp_path, rng):
    # Loading restores the invariant "pruned entries are exactly zero" even for
    # a file that breaks it (magnitude pruning reads the stored kernel).
    model = keras.Sequential([keras.Input((6,)), MaskedDense(5, name="masked")])
    layer = model.get_layer("masked")
    mask = rng.random((6, 5)) > 0.5
    layer.set_mask(mask)
    stale = rng.normal(size=(6, 5)).astype("float32")
    layer.raw_kernel.assign(stale)  # bypasses set_mask: pruned entries non-zero
    path = str(tmp_path / "stale.keras")
    model.save(path)
    loaded = keras.models.load_model(path).get_layer("masked")
    kernel = keras.ops.convert_to_numpy(loaded.raw_kernel)
    assert np.all(kernel[~mask] == 0)
    np.testing.assert_array_equal(kernel[mask], stale[mask])
    x = rng.normal(size=(3, 6)).astype("float32")
    bias = keras.ops.convert_to_numpy(loaded.bias)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        x @ (stale * mask) + bias,
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_config_matches_parent_and_round_trips(cls, plain_cls, kwargs, shape):
    layer = cls(**kwargs, name="x", use_bias=False)
    config = layer.get_config()
    assert config == plain_cls(**kwargs, name="x", use_bias=False).get_config()
    clone = cls.from_config(config)
    assert isinstance(clone, cls) and clone.get_config() == config


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_keras_file_round_trip_is_exact_without_custom_objects(
    cls, plain_cls, kwargs, shape, tmp_path, rng
):
    model = keras.Sequential([keras.Input(shape[1:]), cls(**kwargs, name="masked")])
    layer = model.get_layer("masked")
    layer.set_mask(rng.random(tuple(layer.raw_kernel.shape)) > 0.5)
    layer.bias.assign(rng.normal(size=tuple(layer.bias.shape)))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    loaded_layer = loaded.get_layer("masked")
    assert type(loaded_layer) is cls
    for a, b in zip(layer.weights, loaded_layer.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
        assert a.dtype == b.dtype


def test_loading_plain_weights_into_masked_layer_is_a_clear_error(tmp_path):
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    path = str(tmp_path / "plain.weights.h5")
    plain.save_weights(path)
    masked = keras.Sequential([keras.Input((3,)), MaskedDense(2, name="d")])
    with pytest.raises(ValueError, match="expected 3 variables"):
        masked.load_weights(path)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.ones((3, 3)), "shape"),
        (np.full((4, 5), 2.0), "other than 0 and 1"),
        (np.full((4, 5), "a"), "dtype"),
    ],
)
def test_bad_masks_are_rejected_and_leave_layer_unchanged(bad, match):
    layer = _built(MaskedDense, dict(units=5), (1, 4))
    before = keras.ops.convert_to_numpy(layer.raw_kernel).copy()
    with pytest.raises(ValueError, match=match):
        layer.set_mask(bad)
    assert layer.get_mask().all()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.raw_kernel), before)


def test_lora_and_quantize_are_refused_with_guidance():
    with pytest.raises(ValueError, match="strip_masks"):
        MaskedDense(3, lora_rank=2)
    layer = _built(MaskedDense, dict(units=5), (1, 4))
    with pytest.raises(NotImplementedError, match="strip_masks"):
        layer.quantize("int8")
    with pytest.raises(NotImplementedError, match="strip_masks"):
        layer.enable_lora(2)


OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_pruned_weights_stay_exactly_zero_when_mask_changes_mid_training(name):
    # The optimizer keeps its state (momentum / moments) across the mask change,
    # which is exactly the situation in which pruned weights usually drift.
    x, y = classification_data()
    model = mlp()
    model.compile(OPTIMIZERS[name](), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    masks = kl.pruning.prune_magnitude(model, 0.5, scope="layerwise")
    before = {
        lyr.name: keras.ops.convert_to_numpy(lyr.raw_kernel).copy()
        for lyr in kl.pruning.masked_layers(model)
    }
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    for layer in kl.pruning.masked_layers(model):
        kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
        mask = masks[layer.name]
        assert np.all(kernel[~mask] == 0), (
            f"{name}: pruned weights moved in {layer.name}"
        )
        assert not np.array_equal(kernel[mask], before[layer.name][mask]), (
            "no training?"
        )


def test_mask_change_between_epochs_inside_fit_takes_effect():
    x, y = classification_data()
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")

    class PruneAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.masks = kl.pruning.prune_magnitude(self.model, 0.7)

    callback = PruneAfterFirstEpoch()
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    for layer in kl.pruning.masked_layers(model):
        mask = callback.masks[layer.name]
        np.testing.assert_array_equal(layer.get_mask(), mask)
        assert np.all(keras.ops.convert_to_numpy(layer.raw_kernel)[~mask] == 0)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_lottery as kl
    from tests.helpers import classification_data, mlp

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    x, y = classification_data(n=128)
    with strategy.scope():
        model = mlp()
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      "sparse_categorical_crossentropy")

    class Prune(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.masks = kl.pruning.prune_magnitude(self.model, 0.6)

    prune = Prune()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[prune])
    for layer in kl.pruning.masked_layers(model):
        local = strategy.experimental_local_results
        masks = [m.numpy() for m in local(layer.mask.value)]
        kernels = [k.numpy() for k in
                   strategy.experimental_local_results(layer.raw_kernel.value)]
        assert len(masks) == 2
        expected = prune.masks[layer.name]
        for m, k in zip(masks, kernels):
            np.testing.assert_array_equal(m, expected)
            assert np.all(k[~expected] == 0)
        np.testing.assert_array_equal(kernels[0], kernels[1])
    print("MIRRORED_OK")
    """
)


@tensorflow_only
def test_masks_identical_on_every_replica_under_mirrored_strategy():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert "MIRRORED_OK" in result.stdout, result.stderr[-3000:]
