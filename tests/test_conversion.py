import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import pruning
from keras_lottery.conversion import HARD_TWINS, SOFT_TWINS, harden, soften
from keras_lottery.layers import (
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    SoftMaskedConv2D,
)
from keras_lottery.soft_masks import soft_layers
from tests.conftest import tensorflow_only
from tests.helpers import images, small_convnet, soft_convnet, to_numpy

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _assert_same_outputs(a, b, x):
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_sequential_copy_has_masked_twins_same_weights_and_outputs(rng):
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, 3, name="c"),
            keras.layers.DepthwiseConv2D(3, name="dw"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Flatten(),
            keras.layers.Dense(4, name="d"),
        ]
    )
    copy = kl.prunable(model)
    assert copy is not model
    assert type(copy.get_layer("c")) is MaskedConv2D
    assert type(copy.get_layer("dw")) is MaskedDepthwiseConv2D
    assert type(copy.get_layer("d")) is MaskedDense
    assert type(copy.get_layer("bn")) is keras.layers.BatchNormalization
    assert type(model.get_layer("d")) is keras.layers.Dense  # original untouched
    _assert_same_outputs(model, copy, rng.normal(size=(3, 6, 6, 2)).astype("float32"))


def test_functional_with_nested_sequential(rng):
    inner = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, name="inner_d")], name="inner"
    )
    inputs = keras.Input((5,))
    x = inner(inputs)
    x = keras.layers.Dense(3, name="head")(keras.layers.Concatenate()([x, inputs]))
    model = keras.Model(inputs, x)
    copy = kl.prunable(model)
    assert kl.pruning.layer_names(copy) == ["inner_d", "head"]
    _assert_same_outputs(model, copy, rng.normal(size=(4, 5)).astype("float32"))


def test_layer_selection_by_names_and_predicate():
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, name="a"),
            keras.layers.Dense(3, name="b"),
        ]
    )
    assert kl.pruning.layer_names(kl.prunable(model, layers=["b"])) == ["b"]
    assert kl.pruning.layer_names(
        kl.prunable(model, layers=lambda lyr: lyr.name == "a")
    ) == ["a"]
    with pytest.raises(ValueError, match=r"\['zz'\].*Eligible layers: \['a', 'b'\]"):
        kl.prunable(model, layers=["zz"])
    with pytest.raises(ValueError, match="list of layer names"):
        kl.prunable(model, layers="a")


def test_compile_settings_are_carried_over():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.5), "mse", metrics=["mae"])
    copy = kl.prunable(model)
    assert copy.compiled
    assert copy.optimizer is not model.optimizer
    assert copy.optimizer.get_config()["momentum"] == 0.5
    copy.fit(np.ones((4, 5)), np.ones((4, 3)), verbose=0)


def test_subclassed_model_gets_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    with pytest.raises(ValueError, match="subclassed model Net.*keras_lottery.layers"):
        kl.prunable(Net())


def _residual_model():
    """What the Keras applications exercise, in miniature: residual additions,
    batch norm, depthwise convolutions and a nested Sequential block."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    for i in range(2):
        y = keras.layers.Conv2D(4, 1, name=f"block{i}_conv")(x)
        y = keras.layers.BatchNormalization(name=f"block{i}_bn")(y)
        y = keras.layers.DepthwiseConv2D(3, padding="same", name=f"block{i}_dw")(y)
        x = keras.layers.Add(name=f"block{i}_add")([x, y])
    head = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6, name="head_fc")], name="head"
    )
    x = head(keras.layers.GlobalAveragePooling2D()(x))
    outputs = keras.layers.Dense(5, name="predictions")(x)
    return keras.Model(inputs, outputs)


def _check_masked_copy(model, x):
    copy = kl.prunable(model)
    expected = [
        lyr.name
        for lyr in model._flatten_layers()
        if type(lyr) in kl.layers.MASKED_TWINS
    ]
    assert pruning.layer_names(copy) == expected and expected
    assert not pruning.masked_layers(model)  # the original is untouched
    _assert_same_outputs(model, copy, x)
    return copy


def test_residual_model_with_nested_block(rng):
    model = _residual_model()
    copy = _check_masked_copy(model, rng.normal(size=(3, 8, 8, 3)).astype("float32"))
    assert pruning.layer_names(copy) == [
        "stem",
        "block0_conv",
        "block0_dw",
        "block1_conv",
        "block1_dw",
        "head_fc",
        "predictions",
    ]
    # Pruning the copy changes its outputs: the masks are wired into the graph.
    pruning.prune_magnitude(copy, 0.5)
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    assert not np.allclose(model.predict(x, verbose=0), copy.predict(x, verbose=0))


@tensorflow_only
@pytest.mark.parametrize(
    "name",
    [pytest.param("ResNet50", marks=pytest.mark.slow), "MobileNetV2", "VGG16"],
)
def test_keras_applications(name, rng):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classes=5
    )
    _check_masked_copy(model, rng.normal(size=(2, 32, 32, 3)).astype("float32"))


# --------------------------------------------------------------------------- soft masks


@pytest.mark.parametrize("s0", [0.0, -0.3, 0.2])
def test_soft_mask_is_one_at_start_and_outputs_are_unchanged(s0):
    x, _ = images(8)
    model = small_convnet()
    soft = soften(model, ["conv1", "conv2"], mask_initial_value=s0)
    for layer in soft_layers(soft):
        np.testing.assert_allclose(to_numpy(layer.soft_mask()), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(to_numpy(layer.mask_logits), np.float32(s0))
    np.testing.assert_allclose(
        soft.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    assert [type(layer) for layer in soft_layers(soft)] == [SoftMaskedConv2D] * 2
    assert type(soft.get_layer("out")) is MaskedDense  # not in `layers`: kept


def test_soften_errors():
    model = small_convnet()
    with pytest.raises(ValueError, match=r"Cannot soft-mask layer\(s\) \['bn1'\]"):
        soften(model, ["bn1"])
    with pytest.raises(ValueError, match="must be a list of names"):
        soften(model, "conv1")
    with pytest.raises(ValueError, match="mask_penalty must be >= 0"):
        soften(model, ["conv1"], penalty=-1e-8)
    pruning.set_masks(model, {"conv1": np.zeros((3, 3, 3, 4), bool)})
    with pytest.raises(ValueError, match="'conv1' already has pruned weights"):
        soften(model, ["conv1"])


def test_harden_keeps_weights_and_binary_masks():
    soft = soft_convnet()
    rng = np.random.default_rng(4)
    for layer in soft_layers(soft):
        layer.mask_logits.assign(rng.normal(size=layer.mask_logits.shape))
    hard = harden(soft)
    assert not soft_layers(hard) and hard.compiled
    for soft_layer in soft_layers(soft):
        layer = hard.get_layer(soft_layer.name)
        assert type(layer) is MaskedConv2D
        mask = soft_layer.hard_mask()
        np.testing.assert_array_equal(layer.get_mask(), mask)
        np.testing.assert_array_equal(
            to_numpy(layer.raw_kernel), to_numpy(soft_layer.raw_kernel) * mask
        )
    for name in ("bn1", "out"):
        for a, b in zip(
            soft.get_layer(name).weights, hard.get_layer(name).weights, strict=True
        ):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    with pytest.raises(ValueError, match="one mask per soft-mask layer"):
        harden(soft, {"conv1": np.ones((3, 3, 3, 4), bool)})
    with pytest.raises(ValueError, match="no soft-mask layer"):
        harden(small_convnet())


def test_soft_and_hard_twins_pair_up():
    # A plain or masked layer softened and hardened again is its masked twin.
    for plain, soft in SOFT_TWINS.items():
        assert HARD_TWINS[soft] is kl.layers.MASKED_TWINS.get(plain, plain)
    assert set(HARD_TWINS) == set(SOFT_TWINS.values())


def test_unbuilt_model_gets_a_clear_error():
    model = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="prunable needs a built model"):
        kl.prunable(model)


def test_layers_without_a_masked_twin_are_listed_in_a_warning():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.SeparableConv2D(4, 3, name="sep"),
            keras.layers.Conv2DTranspose(2, 3, name="up"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, name="head"),
        ]
    )
    with pytest.warns(UserWarning, match="leaves 2 layer") as caught:
        masked = kl.prunable(model)
    assert "sep (SeparableConv2D)" in str(caught[0].message)
    assert "up (Conv2DTranspose)" in str(caught[0].message)
    assert pruning.layer_names(masked) == ["head"]
