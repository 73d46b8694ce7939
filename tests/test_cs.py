import math
import os

import keras
import numpy as np
import pytest

from keras_lottery import cs, pruning
from keras_lottery.layers import (
    MaskedConv2D,
    SoftMaskedConv2D,
    SoftMaskedDense,
    SoftMaskedDepthwiseConv2D,
)
from keras_lottery.rewind import sync_state
from keras_lottery.ticket import Ticket
from tests.helpers import small_convnet

pytestmark = pytest.mark.backend_neutral


def _images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32") + (
        x[..., 1].mean(axis=(1, 2)) > 0
    ).astype("int32")
    return x, y


def _soft(s0=0.0, penalty=1e-3, seed=0):
    keras.utils.set_random_seed(seed)
    soft = cs.soften(
        small_convnet(), ["conv1", "conv2"], mask_initial_value=s0, penalty=penalty
    )
    soft.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return soft


def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _search(**kwargs):
    options = {"rounds": 2, "rewind": "1ep", "seed": 3, "verbose": 0}
    return cs.ContinuousSparsification(**{**options, **kwargs})


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize("s0", [0.0, -0.3, 0.2])
def test_mask_is_one_at_start_and_outputs_are_unchanged(s0):
    x, _ = _images(8)
    model = small_convnet()
    soft = cs.soften(model, ["conv1", "conv2"], mask_initial_value=s0)
    for layer in cs.soft_layers(soft):
        np.testing.assert_allclose(_np(layer.soft_mask()), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(_np(layer.mask_logits), np.float32(s0))
    np.testing.assert_allclose(
        soft.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    assert [type(layer) for layer in cs.soft_layers(soft)] == [SoftMaskedConv2D] * 2


def test_penalty_is_lambda_times_sum_of_soft_masks():
    soft = _soft(penalty=0.01)
    rng = np.random.default_rng(1)
    for layer in cs.soft_layers(soft):
        layer.mask_logits.assign(rng.normal(size=layer.mask_logits.shape))
        layer.set_temperature(3.0)
    x, _ = _images(4)
    soft(x)
    expected = sum(
        0.01 * np.sum(1 / (1 + np.exp(-3.0 * _np(layer.mask_logits))) / 0.5)
        for layer in cs.soft_layers(soft)
    )
    assert float(sum(_np(loss) for loss in soft.losses)) == pytest.approx(
        expected, rel=1e-5
    )


def test_training_step_moves_logits_and_weights():
    soft = _soft(penalty=1e-2)
    x, y = _images(16)
    before = {v.path: _np(v).copy() for v in soft.trainable_variables}
    soft.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for layer in cs.soft_layers(soft):
        for variable in (layer.mask_logits, layer.raw_kernel):
            assert not np.allclose(_np(variable), before[variable.path]), variable.path
        assert not layer.temperature.trainable and not layer.penalty.trainable


def test_soft_layers_round_trip_through_keras_files(tmp_path):
    inputs = keras.Input((6, 6, 4))
    x = SoftMaskedDepthwiseConv2D(3, padding="same", mask_initial_value=-0.1)(inputs)
    x = SoftMaskedConv2D(5, 3, mask_penalty=0.5)(x)
    outputs = SoftMaskedDense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(2)
    for layer in cs.soft_layers(model):
        layer.mask_logits.assign(rng.normal(size=layer.mask_logits.shape))
        layer.set_temperature(7.0)
    model.save(tmp_path / "soft.keras")
    loaded = keras.models.load_model(tmp_path / "soft.keras")
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(_np(a), _np(b))
    assert cs.soft_layers(loaded)[0].mask_initial_value == -0.1
    assert cs.soft_layers(loaded)[1].mask_penalty == 0.5


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="mask_penalty must be >= 0"):
        SoftMaskedDense(3, mask_penalty=-1.0)
    with pytest.raises(ValueError, match="mask_initial_value must be a finite"):
        SoftMaskedDense(3, mask_initial_value=math.inf)
    layer = SoftMaskedDense(3)
    layer.build((None, 2))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        layer.set_temperature(0.0)


def test_soften_errors():
    model = small_convnet()
    with pytest.raises(ValueError, match=r"Cannot soft-mask layer\(s\) \['bn1'\]"):
        cs.soften(model, ["bn1"])
    pruning.set_masks(model, {"conv1": np.zeros((3, 3, 3, 4), bool)})
    with pytest.raises(ValueError, match="'conv1' already has pruned weights"):
        cs.soften(model, ["conv1"])


# --------------------------------------------------------------------------- masks


def test_binarize_threshold_and_exact_target():
    soft = _soft()
    conv1, conv2 = cs.soft_layers(soft)
    logits1 = np.linspace(-1, 1, 108).reshape(conv1.mask_logits.shape)
    conv1.mask_logits.assign(logits1)
    conv2.mask_logits.assign(np.full(conv2.mask_logits.shape, 0.5))
    masks = cs.binarize(soft)
    assert masks["conv1"].sum() == np.sum(logits1 > 0) == 54  # 108 evenly from -1
    assert masks["conv2"].all()
    total = 108 + 216
    exact = cs.binarize(soft, target_sparsity=0.5)
    kept = sum(int(m.sum()) for m in exact.values())
    assert kept == round(0.5 * total) == 162
    # conv1's 27 logits above 0.5 come first; the 216 ties at 0.5 (conv2) fill
    # the remaining 135 places by position.
    assert exact["conv1"].sum() == 27 and exact["conv1"].ravel()[-27:].all()
    assert exact["conv2"].ravel()[:135].all() and not exact["conv2"].ravel()[135:].any()
    with pytest.raises(ValueError, match=r"target_sparsity must be in \[0, 1\)"):
        cs.binarize(soft, target_sparsity=1.0)


def test_reset_rule_paper_and_code():
    soft = _soft(s0=-0.1)
    layer = cs.soft_layers(soft)[0]
    logits = np.zeros(layer.mask_logits.shape, "float32")
    logits.flat[:3] = [0.5, -0.02, -0.5]
    layer.mask_logits.assign(logits)
    layer.set_temperature(10.0)
    cs.reset_logits(soft, "paper")
    np.testing.assert_allclose(_np(layer.mask_logits).flat[:3], [-0.1, -0.2, -5.0])
    layer.mask_logits.assign(logits)
    cs.reset_logits(soft, "code")
    np.testing.assert_allclose(_np(layer.mask_logits).flat[:3], [-0.1, -0.1, -0.5])
    with pytest.raises(ValueError, match="rule must be one of"):
        cs.reset_logits(soft, "both")


def test_harden_keeps_weights_and_binary_masks():
    soft = _soft()
    rng = np.random.default_rng(4)
    for layer in cs.soft_layers(soft):
        layer.mask_logits.assign(rng.normal(size=layer.mask_logits.shape))
    hard = cs.harden(soft)
    assert not cs.soft_layers(hard)
    for soft_layer in cs.soft_layers(soft):
        layer = hard.get_layer(soft_layer.name)
        assert type(layer) is MaskedConv2D
        mask = soft_layer.hard_mask()
        np.testing.assert_array_equal(layer.get_mask(), mask)
        np.testing.assert_array_equal(
            _np(layer.raw_kernel), _np(soft_layer.raw_kernel) * mask
        )
    for name in ("bn1", "out"):
        for a, b in zip(
            soft.get_layer(name).weights, hard.get_layer(name).weights, strict=True
        ):
            np.testing.assert_array_equal(_np(a), _np(b))
    with pytest.raises(ValueError, match="one mask per soft-mask layer"):
        cs.harden(soft, {"conv1": np.ones((3, 3, 3, 4), bool)})


# --------------------------------------------------------------------------- search


def test_temperature_follows_the_schedule_exactly():
    soft = _soft()
    x, y = _images(16)
    seen = []

    class Read(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            sync_state(self.model)
            seen.append(float(_np(cs.soft_layers(self.model)[0].temperature)))

    schedule = cs.TemperatureSchedule(200.0, 5)
    soft.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[schedule, Read()])
    assert seen == pytest.approx([200 ** (e / 4) for e in range(5)], rel=1e-6)
    assert seen[0] == 1.0 and seen[-1] == pytest.approx(200.0)
    soft.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[schedule, Read()])
    assert seen[5] == 1.0  # restarts at 1 with every fit (every round)


def test_search_and_ticket_round_trip(tmp_path):
    x, y = _images()
    soft = _soft()
    result = _search(baselines=["random_reinit", "random_prune"]).run(
        soft, x, y, epochs=3, batch_size=16, verbose=0, test_data=(x, y)
    )
    assert [r.round for r in result.rounds] == [0, 1]
    assert result.epochs == {"search": 6, "ticket": 3, "total": 9}
    assert set(result.baselines) == {"random_reinit", "random_prune"}
    ticket = result.ticket
    masks = cs.binarize(soft)  # final logits; the weights are rewound
    for name, mask in masks.items():
        np.testing.assert_array_equal(ticket.masks[name], mask)
    np.testing.assert_array_equal(ticket.masks["out"], True)  # out of scope
    scope = sum(int(m.sum()) for m in masks.values()) / sum(
        m.size for m in masks.values()
    )
    assert ticket.metadata["sparsity_in_scope"] == pytest.approx(1 - scope)
    assert ticket.metadata["method"] == "cs"
    assert ticket.metadata["threshold_sparsity"] == pytest.approx(
        1 - result.rounds[-1].fraction_remaining
    )
    # The ticket's weights are the rewind point's (epoch 1), masked.
    ticket.save(tmp_path / "cs.ticket.npz")
    loaded = Ticket.load(tmp_path / "cs.ticket.npz")
    fresh = small_convnet()
    loaded.apply(fresh)
    conv = fresh.get_layer("conv1")
    np.testing.assert_array_equal(
        _np(conv.raw_kernel), _np(soft.get_layer("conv1").raw_kernel) * masks["conv1"]
    )


def test_exact_target_sparsity_and_prune_mode():
    x, y = _images()
    soft = _soft()
    search = _search(mode="prune", target_sparsity=0.75)
    result = search.run(soft, x, y, epochs=2, batch_size=16, verbose=0)
    in_scope = 108 + 216
    assert result.ticket.metadata["sparsity_in_scope"] == pytest.approx(
        1 - round(0.25 * in_scope) / in_scope
    )
    # Prune mode keeps the searched weights: the ticket starts from them.
    conv = soft.get_layer("conv2")
    paths = [v["path"] for v in result.ticket.variables]
    np.testing.assert_array_equal(
        result.ticket.weights[paths.index(conv.raw_kernel.path)],
        _np(conv.raw_kernel) * result.ticket.masks["conv2"],
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"final_temperature": 0.0}, "final_temperature must be a number > 0"),
        ({"rounds": 0}, "rounds must be an int >= 1"),
        ({"mode": "hybrid"}, "mode must be one of"),
        ({"logit_reset": "none"}, "logit_reset must be one of"),
        ({"target_sparsity": 1.5}, r"target_sparsity must be in \[0, 1\)"),
    ],
)
def test_bad_search_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cs.ContinuousSparsification(**kwargs)


def test_bad_run_arguments_fail_before_training():
    x, y = _images()
    soft = _soft()
    before = [_np(v).copy() for v in soft.weights]
    with pytest.raises(ValueError, match="not inside the first round"):
        _search(rewind="4ep").run(soft, x, y, epochs=3, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="must be an int >= 2"):
        _search().run(soft, x, y, epochs=1, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="no soft-mask layer"):
        _search().run(small_convnet(), x, y, epochs=3, batch_size=16)
    for a, b in zip(before, soft.weights, strict=True):
        np.testing.assert_array_equal(a, _np(b))
    with pytest.raises(ValueError, match="mask_penalty must be >= 0"):
        cs.soften(small_convnet(), ["conv1"], penalty=-1e-8)


def test_interrupted_search_resumes_with_identical_ticket(tmp_path):
    x, y = _images()
    kwargs = {"epochs": 2, "batch_size": 16, "verbose": 0}
    full = _search(rounds=3, checkpoint_dir=str(tmp_path / "full")).run(
        _soft(), x, y, **kwargs
    )
    fits = []

    class Interrupt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(1)
            if len(fits) == 3:  # search round 2
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _search(rounds=3, checkpoint_dir=str(tmp_path / "cut")).run(
            _soft(), x, y, callbacks=[Interrupt()], **kwargs
        )
    assert sorted(os.listdir(tmp_path / "cut")) == [
        "rewind_state.npz",
        "search_000",
        "search_001",
    ]
    resumed = _search(rounds=3, checkpoint_dir=str(tmp_path / "cut")).run(
        _soft(), x, y, **kwargs
    )
    assert [r.round for r in resumed.rounds] == [0, 1, 2]
    for name, mask in full.ticket.masks.items():
        np.testing.assert_array_equal(resumed.ticket.masks[name], mask)
    for a, b in zip(full.ticket.weights, resumed.ticket.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_nan_in_logits_stops_with_a_message_and_keeps_the_last_good_round(tmp_path):
    x, y = _images()
    fits = []  # outside the callback: the search deep-copies callbacks every round

    class Poison(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(1)

        def on_epoch_end(self, epoch, logs=None):
            if len(fits) == 2 and epoch == 1:  # end of search round 1
                sync_state(self.model)
                layer = cs.soft_layers(self.model)[1]
                values = _np(layer.mask_logits).copy()
                values.flat[0] = np.nan
                layer.mask_logits.assign(values)

    with pytest.raises(
        RuntimeError, match="non-finite values in the mask logits of 'conv2'"
    ) as error:
        _search(rounds=3, checkpoint_dir=str(tmp_path)).run(
            _soft(), x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Poison()]
        )
    assert "last good checkpoint is search round 0" in str(error.value)
    assert (tmp_path / "search_000" / "record.json").exists()
    assert not (tmp_path / "search_001").exists()
