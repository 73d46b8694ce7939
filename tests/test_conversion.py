import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.layers import MaskedConv2D, MaskedDense, MaskedDepthwiseConv2D
from tests.conftest import tensorflow_only

pytestmark = pytest.mark.backend_neutral


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


@tensorflow_only
@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2", "VGG16"])
def test_keras_applications(name, rng):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classes=5
    )
    copy = kl.prunable(model)
    expected = [lyr.name for lyr in model.layers if type(lyr) in kl.layers.MASKED_TWINS]
    assert kl.pruning.layer_names(copy) == expected and expected
    _assert_same_outputs(model, copy, rng.normal(size=(2, 32, 32, 3)).astype("float32"))
