"""keras_lottery.sparsity_patterns: block and N:M masks with exact counts."""

import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.errors import ConfigError
from keras_lottery.layers import MaskedConv2D, MaskedDense
from keras_lottery.sparsity_patterns import Pattern, matrix_view, parse_pattern

pytestmark = pytest.mark.backend_neutral


def _dense(kernel, name="d"):
    kernel = np.asarray(kernel, "float32")
    model = keras.Sequential(
        [keras.Input((kernel.shape[0],)), MaskedDense(kernel.shape[1], name=name)]
    )
    model.layers[0]._kernel.assign(kernel)
    return model


def test_parse_pattern():
    assert parse_pattern("2:4") == Pattern("n:m", 2, 4)
    assert parse_pattern(" 4x1 ") == Pattern("block", 4, 1)
    assert str(parse_pattern("1x4")) == "1x4" and str(parse_pattern("2:4")) == "2:4"
    for bad in ("5:4", "0x4", "2-4", "1x", ""):
        with pytest.raises(ConfigError, match="Invalid sparsity pattern"):
            parse_pattern(bad)


def test_two_of_four_keeps_the_two_largest_of_each_group():
    column = [0.1, -0.9, 0.5, 0.2, 3.0, 1.0, 1.0, -1.0]  # groups of 4 rows
    kernel = np.stack([column, column[::-1]], axis=1)
    model = _dense(kernel)
    masks = pruning.magnitude_masks_to_density(model, 0.5, pattern="2:4")
    mask = masks["d"]
    # Ties (1.0, 1.0, -1.0): the lower index is pruned first, as unstructured.
    np.testing.assert_array_equal(mask[:, 0], [0, 1, 1, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(mask[:, 1], [0, 0, 1, 1, 0, 1, 1, 0])
    assert mask.dtype == bool and mask.sum() == 8


def test_n_of_m_only_shrinks_masks():
    model = _dense(np.arange(1, 9, dtype="float32")[:, None] * [1.0, 1.0])
    layer = model.layers[0]
    prior = np.ones((8, 2), bool)
    prior[[6, 7], 0] = False  # column 0: the largest of the second group are gone
    layer.set_mask(prior)
    mask = pruning.magnitude_masks_to_density(model, 0.5, pattern="2:4")["d"]
    np.testing.assert_array_equal(mask[:, 0], [0, 0, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(mask[:, 1], [0, 0, 1, 1, 0, 0, 1, 1])


def test_conv_kernels_group_input_channels():
    layer = MaskedConv2D(2, 1, name="c")
    model = keras.Sequential([keras.Input((3, 3, 8)), layer])
    rng = np.random.default_rng(0)
    layer._kernel.assign(rng.normal(size=(1, 1, 8, 2)).astype("float32"))
    mask = pruning.magnitude_masks_to_density(model, 0.5, pattern="2:4")["c"]
    assert mask.shape == (1, 1, 8, 2)
    groups = matrix_view(mask).reshape(2, 4, 2)
    np.testing.assert_array_equal(groups.sum(axis=1), np.full((2, 2), 2))


@pytest.mark.parametrize("pattern,block", [("1x4", (1, 4)), ("4x1", (4, 1))])
def test_blocks_are_all_or_nothing_with_exact_counts(pattern, block):
    rng = np.random.default_rng(1)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            MaskedDense(8, name="a"),
            MaskedDense(4, name="b"),
        ]
    )
    for layer in model.layers:
        layer._kernel.assign(rng.normal(size=layer.get_mask().shape).astype("f4"))
    masks = pruning.magnitude_masks_to_density(model, 0.3, pattern=pattern)
    blocks = (64 + 32) // 4
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == 4 * round(0.3 * blocks)  # 7 of the pool's 24 blocks
    r, c = block
    for name, mask in masks.items():
        rows, cols = mask.shape
        tiles = mask.reshape(rows // r, r, cols // c, c).sum(axis=(1, 3))
        assert set(np.unique(tiles)) <= {0, r * c}, name
    # The kept blocks are those of largest mean magnitude.
    scores = np.concatenate(
        [
            np.abs(np.asarray(keras.ops.convert_to_numpy(layer.raw_kernel)))
            .reshape(layer.get_mask().shape[0] // r, r, -1, c)
            .mean(axis=(1, 3))
            .ravel()
            for layer in model.layers
        ]
    )
    alive = np.concatenate(
        [
            masks[layer.name]
            .reshape(layer.get_mask().shape[0] // r, r, -1, c)
            .any(axis=(1, 3))
            .ravel()
            for layer in model.layers
        ]
    )
    assert scores[alive].min() > scores[~alive].max()


def test_blocks_that_do_not_divide_the_kernel_are_refused():
    model = keras.Sequential([keras.Input((8,)), MaskedDense(3, name="head")])
    with pytest.raises(ConfigError, match="Layer 'head'.*does not divide into 1x4"):
        pruning.magnitude_masks_to_density(model, 0.5, pattern="1x4")
    with pytest.raises(ConfigError, match="Layer 'head'.*multiple of M=3"):
        keras.Sequential([keras.Input((7,)), MaskedDense(3, name="head")])
        pruning.magnitude_masks_to_density(
            keras.Sequential([keras.Input((7,)), MaskedDense(3, name="head")]),
            0.5,
            pattern="1:3",
        )
