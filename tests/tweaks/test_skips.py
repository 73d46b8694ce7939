import copy

import keras
import numpy as np
import pytest

from keras_lottery import models, pruning
from keras_lottery.errors import ConfigError
from keras_lottery.export import export
from keras_lottery.tweaks.activations import pswish, with_soft_activations
from keras_lottery.tweaks.skips import (
    ExtraSkipFade,
    LinearFade,
    SkipScale,
    add_extra_skips,
    extra_skip_layers,
    extra_skip_parameters,
    get_extra_skip_alpha,
    set_extra_skip_alpha,
)


def _resnet(classes=3):
    """CIFAR ResNet-8 of width 4 on 8x8 images: one block per stage, the last
    two with stride 2 and a projection shortcut; half its weights pruned."""
    model = models.get(
        "cifar_resnet",
        num_classes=classes,
        input_shape=(8, 8, 3),
        depth=8,
        width=4,
        classifier_activation=None,
    )
    pruning.prune_magnitude(model, 0.5)
    return model


@pytest.fixture(scope="module")
def pair():
    """A pruned ResNet-8 and its copy with extra skips (tests restore alpha)."""
    model = _resnet()
    return model, add_extra_skips(model)


def _images(n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype("float32")


def test_paths_barely_change_the_initial_output_and_keep_the_ticket(pair):
    model, skip = pair
    x = _images()

    change = np.abs(np.asarray(skip(x)) - np.asarray(model(x))).max()
    assert 0 < change < 1e-3
    for layer in model.layers:
        for old, new in zip(
            layer.weights, skip.get_layer(layer.name).weights, strict=True
        ):
            np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    assert pruning.sparsity_report(skip) == pruning.sparsity_report(model)
    assert models.describe(skip) == models.describe(model)


def test_skip_layers_and_their_parameters_are_reported_apart(pair):
    model, skip = pair

    names = extra_skip_layers(skip)
    assert names[:4] == [
        "stage1_block1_skip1_conv",
        "stage1_block1_skip1_bn",
        "stage1_block1_skip2_conv",
        "stage1_block1_skip2_bn",
    ]
    assert len(names) == 12 and not any(
        name in pruning.layer_names(skip) for name in names
    )
    # Per block: skip1 in*planes + BN 2*planes, skip2 planes^2 + BN 2*planes;
    # plus the shared alpha.
    blocks = [(4, 4), (4, 8), (8, 16)]
    expected = sum(i * p + 2 * p + p * p + 2 * p for i, p in blocks) + 1
    assert extra_skip_parameters(skip) == expected == 625
    assert models.count_parameters(skip) - models.count_parameters(model) == 625
    kernel = np.asarray(skip.get_layer("stage2_block1_skip1_conv").kernel)
    assert kernel.shape == (1, 1, 4, 8) and np.all(kernel == np.float32(1e-4))
    assert skip.get_layer("stage2_block1_skip1_conv").strides == (2, 2)


def test_alpha_zero_removes_the_paths_even_in_training_mode(pair):
    model, skip = pair
    x = _images()
    assert get_extra_skip_alpha(skip) == 1.0
    trained = np.asarray(skip(x, training=True))
    assert np.abs(trained - np.asarray(model(x, training=True))).max() > 1e-3
    try:
        set_extra_skip_alpha(skip, 0.0)
        without = np.asarray(skip(x, training=True))
    finally:
        set_extra_skip_alpha(skip, 1.0)
    np.testing.assert_allclose(without, np.asarray(model(x, training=True)), 1e-6)


def test_composes_with_soft_activations_and_exports_to_keras(tmp_path, pair):
    skip = add_extra_skips(with_soft_activations(pair[0], "pswish"), alpha=0.25)
    assert skip.get_layer("stage1_block1_out").activation is pswish
    x = _images()
    result = export(skip, tmp_path / "skip.keras", format="keras")
    loaded = keras.saving.load_model(result.path)

    assert get_extra_skip_alpha(loaded) == 0.25
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(skip(x)), atol=1e-6)
    assert extra_skip_layers(loaded) == extra_skip_layers(skip)
    # The dense payload counts the skip paths; the sparsity does not.
    assert result.sparsity == pytest.approx(pruning.sparsity_report(skip).sparsity)


@pytest.mark.parametrize(
    "name, options",
    [
        ("lenet_300_100", dict(input_shape=(4, 4, 1), hidden=[4])),
        ("resnet", dict(input_shape=(32, 32, 3), blocks=(1, 1, 1, 1), width=2)),
    ],
)
def test_model_without_basic_blocks_is_refused(name, options):
    if name == "resnet":
        options["block"] = "bottleneck"
    model = models.get(name, **options)
    with pytest.raises(ConfigError, match="need residual basic blocks"):
        add_extra_skips(model)


def _relative_change(model, skip, x, training):
    base = np.asarray(keras.ops.convert_to_numpy(model(x, training=training)))
    new = np.asarray(keras.ops.convert_to_numpy(skip(x, training=training)))
    return np.linalg.norm(new - base) / np.linalg.norm(base)


@pytest.mark.backend_neutral
def test_in_training_mode_the_batch_norm_gives_the_paths_full_strength():
    """Why the 1e-4 init does not keep ToST's paths small while training: the
    paths' BNs divide by the batch's standard deviation."""
    keras.utils.set_random_seed(0)
    model = _resnet()
    skip = add_extra_skips(model)
    x = _images(32)
    inference = _relative_change(model, skip, x, training=False)
    training = _relative_change(model, skip, x, training=True)
    assert inference < 0.01
    assert training > 0.05 and training > 10 * inference


@pytest.mark.backend_neutral
def test_zero_gamma_paths_start_silent_in_training_mode_and_then_learn():
    model = _resnet()
    silent = add_extra_skips(model, bn_gamma=0.0)
    x = _images(32)
    for training in (False, True):
        assert _relative_change(model, silent, x, training) == 0.0
    silent.compile(keras.optimizers.SGD(0.1), "mse")
    target = np.ones((32, 3), "float32")
    silent.fit(x, target, batch_size=32, epochs=1, verbose=0)
    gamma = keras.ops.convert_to_numpy(silent.get_layer("stage1_block1_skip2_bn").gamma)
    assert np.abs(gamma).max() > 0  # the paths are trainable, not switched off


def test_bad_bn_gamma_is_refused():
    with pytest.raises(ConfigError, match="bn_gamma must be finite"):
        add_extra_skips(_resnet(), bn_gamma=float("nan"))


def test_linear_fade_falls_to_zero_and_deep_copies():
    fade = copy.deepcopy(LinearFade(0.5, 4))
    assert [fade(i) for i in range(6)] == [0.5, 0.375, 0.25, 0.125, 0.0, 0.0]
    with pytest.raises(ConfigError, match="epochs must be an int >= 1"):
        LinearFade(1.0, 0)


@pytest.mark.backend_neutral
def test_epoch_schedules_count_from_the_start_of_fit():
    """A ticket retrained from rewind epoch k > 0 (``initial_epoch``) starts
    its fade at the schedule's first value."""
    model = _scaled_net()
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    fade = ExtraSkipFade(LinearFade(1.0, 2))
    history = model.fit(x, y, epochs=5, initial_epoch=2, callbacks=[fade], verbose=0)
    assert history.history["extra_skip_alpha"] == [1.0, 0.5, 0.0]


def _scaled_net():
    """out = dense(x) * alpha: the fade needs only a SkipScale layer."""
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(1, kernel_initializer="ones", name="dense")(inputs)
    outputs = SkipScale(name="extra_skip_alpha")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    return model


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_fade_sets_alpha_per_step_and_logs_it():
    model = _scaled_net()
    fade = copy.deepcopy(ExtraSkipFade(lambda step: 1.0 / (step + 1), per="step"))
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    history = model.fit(x, y, batch_size=4, epochs=2, callbacks=[fade], verbose=0)

    assert history.history["extra_skip_alpha"] == [1.0 / 2, 1.0 / 4]
    assert get_extra_skip_alpha(model) == pytest.approx(1.0 / 4)
    # Each step trained with its own alpha: SGD (lr 0.01) on mse of
    # alpha * (w . x + b) against 0, with x = (1, 1), w = (1, 1), b = 0.
    w, b = np.ones(2), 0.0
    for alpha in (1.0, 1 / 2, 1 / 3, 1 / 4):
        grad = 2 * alpha**2 * (w.sum() + b)
        w, b = w - 0.01 * grad, b - 0.01 * grad
    kernel = np.asarray(keras.ops.convert_to_numpy(model.get_layer("dense").kernel))
    np.testing.assert_allclose(kernel[:, 0], w, rtol=1e-5)

    set_extra_skip_alpha(model, 0.3)  # the default schedule: the constant 1
    history = model.fit(x, y, epochs=2, callbacks=[ExtraSkipFade()], verbose=0)
    assert history.history["extra_skip_alpha"] == [1.0, 1.0]
    assert get_extra_skip_alpha(model) == 1.0


@pytest.mark.backend_neutral
def test_fade_needs_a_model_with_paths():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ConfigError, match="no extra skip paths"):
        model.fit(np.ones((4, 2)), np.zeros(4), epochs=1, callbacks=[ExtraSkipFade()])
    with pytest.raises(ConfigError, match="per must be"):
        ExtraSkipFade(per="batch")
