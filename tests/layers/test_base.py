"""The kernel-mask protocol shared by the masked and the soft-mask layers
(``keras_lottery.layers._base.KernelMaskMixin``)."""

import keras
import numpy as np
import pytest

from keras_lottery.layers import (
    MaskedConv1D,
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    MaskedLayerMixin,
    SoftMaskedConv2D,
    SoftMaskedDense,
    SoftMaskedDepthwiseConv2D,
    SoftMaskMixin,
    is_masked,
    is_soft_masked,
)
from keras_lottery.layers._base import KernelMaskMixin

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]

MASK_NAMES = {
    MaskedLayerMixin: ["mask"],
    SoftMaskMixin: ["mask_logits", "temperature", "mask_penalty"],
}
# (class, plain Keras parent, constructor arguments, input shape)
CASES = [
    (MaskedDense, keras.layers.Dense, dict(units=3), (None, 4)),
    (MaskedConv1D, keras.layers.Conv1D, dict(filters=2, kernel_size=3), (None, 8, 2)),
    (
        MaskedConv2D,
        keras.layers.Conv2D,
        dict(filters=2, kernel_size=3),
        (None, 6, 6, 2),
    ),
    (
        MaskedDepthwiseConv2D,
        keras.layers.DepthwiseConv2D,
        dict(kernel_size=3),
        (None, 6, 6, 2),
    ),
    (SoftMaskedDense, keras.layers.Dense, dict(units=3), (None, 4)),
    (
        SoftMaskedConv2D,
        keras.layers.Conv2D,
        dict(filters=2, kernel_size=3),
        (None, 6, 6, 2),
    ),
    (
        SoftMaskedDepthwiseConv2D,
        keras.layers.DepthwiseConv2D,
        dict(kernel_size=3),
        (None, 6, 6, 2),
    ),
]
IDS = [case[0].__name__ for case in CASES]


def _mask_names(cls):
    return next(names for mixin, names in MASK_NAMES.items() if issubclass(cls, mixin))


def _built(cls, kwargs, shape, **extra):
    layer = cls(**kwargs, **extra)
    layer.build(shape)
    return layer


def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_variables_are_kernel_bias_then_masks_in_saving_order(
    cls, plain_cls, kwargs, shape, use_bias
):
    layer = _built(cls, kwargs, shape, use_bias=use_bias)
    expected = ["kernel"] + (["bias"] if use_bias else []) + _mask_names(cls)
    assert [w.name for w in layer.weights] == expected
    assert layer.raw_kernel is layer.weights[0]
    assert isinstance(layer, KernelMaskMixin) and isinstance(layer, plain_cls)
    store = {}
    layer.save_own_variables(store)
    assert list(store) == [str(i) for i in range(len(expected))]
    for i, variable in enumerate(layer.weights):
        assert store[str(i)] is variable


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_own_variables_round_trip_into_a_fresh_layer(
    cls, plain_cls, kwargs, shape, rng
):
    layer = _built(cls, kwargs, shape)
    for variable in layer.weights:
        if variable.dtype == "bool":
            variable.assign(rng.random(tuple(variable.shape)) > 0.5)
        else:
            variable.assign(rng.uniform(0.5, 2.0, size=tuple(variable.shape)))
    if is_masked(layer):  # pruned entries of the stored kernel are zero
        layer.set_mask(layer.get_mask())
    store = {}
    layer.save_own_variables(store)
    fresh = _built(cls, kwargs, shape)
    fresh.load_own_variables(store)
    for a, b in zip(layer.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(_np(a), _np(b))
        assert a.dtype == b.dtype


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
@pytest.mark.parametrize("delta", [-1, 1])
def test_a_store_with_another_number_of_entries_is_a_clear_error(
    cls, plain_cls, kwargs, shape, delta
):
    source = _built(cls, kwargs, shape)
    store = {}
    source.save_own_variables(store)
    n = len(store)
    if delta < 0:
        store.pop(str(n - 1))
    else:
        store[str(n)] = store["0"]
    layer = _built(cls, kwargs, shape, name="target")
    before = [_np(w).copy() for w in layer.weights]
    with pytest.raises(ValueError) as info:
        layer.load_own_variables(store)
    message = str(info.value)
    assert message.startswith(
        f"Layer 'target' expected {n} variables (kernel, bias if used, "
    )
    assert f"but the saved file holds {n + delta}." in message
    if is_masked(layer):
        assert message.endswith(f"Was it saved from a plain {plain_cls.__name__}?")
    else:
        assert "mask logits, temperature, penalty" in message
        assert message.endswith(f"holds {n + delta}.")
    for old, variable in zip(before, layer.weights, strict=True):
        np.testing.assert_array_equal(old, _np(variable))  # nothing assigned


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_lora_and_quantize_are_refused_naming_the_class(cls, plain_cls, kwargs, shape):
    name = cls.__name__
    with pytest.raises(ValueError, match=f"^{name} does not support `lora_rank`"):
        cls(**kwargs, lora_rank=2)
    layer = _built(cls, kwargs, shape)
    with pytest.raises(NotImplementedError, match=f"^{name} does not support LoRA"):
        layer.enable_lora(2)
    with pytest.raises(NotImplementedError, match=f"^{name} cannot be quantized"):
        layer.quantize("int8")


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_kernel_is_the_effective_kernel_and_needs_a_built_layer(
    cls, plain_cls, kwargs, shape, rng
):
    with pytest.raises(AttributeError, match="must build the layer"):
        _ = cls(**kwargs).kernel
    layer = _built(cls, kwargs, shape)
    raw = rng.normal(size=tuple(layer.raw_kernel.shape)).astype("float32")
    layer.raw_kernel.assign(raw)
    if is_masked(layer):
        mask = rng.random(raw.shape) > 0.5
        layer.mask.assign(mask)
        expected = raw * mask
    else:
        layer.mask_logits.assign(rng.normal(size=raw.shape))
        expected = raw * _np(layer.soft_mask())
    np.testing.assert_array_equal(_np(layer.kernel), expected)


@pytest.mark.parametrize("cls,plain_cls,kwargs,shape", CASES, ids=IDS)
def test_registered_under_the_package_and_kinds_stay_apart(
    cls, plain_cls, kwargs, shape
):
    assert keras.saving.get_registered_name(cls) == f"keras_lottery>{cls.__name__}"
    layer = cls(**kwargs)
    assert is_masked(layer) != is_soft_masked(layer)
    assert not is_masked(plain_cls(**kwargs))
    assert not is_soft_masked(plain_cls(**kwargs))
