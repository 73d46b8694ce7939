"""keras_lottery.methods.cs: the Continuous Sparsification search and its ticket.

The soft-mask layers and model state are tested in tests/test_soft_masks.py,
soften/harden in tests/test_conversion.py, the CS callbacks in
tests/test_callbacks.py."""

import os

import keras
import numpy as np
import pytest

from keras_lottery.config import ConfigError, CSConfig, RunConfig, load_config
from keras_lottery.methods import cs
from keras_lottery.pruning import sync_state
from keras_lottery.soft_masks import binarize, soft_layers
from keras_lottery.steps import Step
from keras_lottery.ticket import Ticket
from tests.conftest import BACKEND
from tests.helpers import images, small_convnet, soft_convnet, to_numpy

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _search(**kwargs):
    """A 2-round search without controls (they add two trainings) unless asked."""
    options = {"rounds": 2, "rewind": "1ep", "seed": 3, "verbose": 0, "baselines": []}
    return cs.ContinuousSparsification(**{**options, **kwargs})


@pytest.mark.core_covered
def test_search_and_ticket_round_trip(tmp_path):
    x, y = images()
    soft = soft_convnet()
    result = _search(baselines=["random_reinit", "random_prune"]).run(
        soft, x, y, epochs=3, batch_size=16, verbose=0
    )
    assert [r.round for r in result.rounds] == [0, 1]
    assert result.epochs == {"search": 6, "ticket": 3, "total": 9}
    assert list(result.baselines) == ["random_reinit", "random_prune"]
    trainings = [result.ticket_training, *result.baselines.values()]
    assert len({t.final["loss"] for t in trainings}) == 3  # three trainings
    ticket = result.ticket
    masks = binarize(soft)  # final logits; the weights are rewound
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
        to_numpy(conv.raw_kernel),
        to_numpy(soft.get_layer("conv1").raw_kernel) * masks["conv1"],
    )


def test_exact_target_sparsity_and_prune_mode():
    x, y = images()
    soft = soft_convnet()
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
        to_numpy(conv.raw_kernel) * result.ticket.masks["conv2"],
    )


def test_driver_defaults_are_the_config_defaults():
    search = cs.ContinuousSparsification()
    section, run = CSConfig(), RunConfig()
    assert search.rounds == section.rounds
    assert search.final_temperature == section.final_temperature
    assert search.rewind == Step.parse(section.rewind)
    assert (search.mode, search.logit_reset) == (section.mode, section.logit_reset)
    assert search.target_sparsity is None and search.evaluate_at == "final"
    assert search.baselines == tuple(run.baselines) == ("random_reinit", "random_prune")


def test_from_config_takes_the_cs_section_baselines_and_seed():
    config = load_config(
        None,
        [
            "method=cs",
            "cs.rounds=4",
            "cs.final_temperature=50",
            "cs.rewind=3it",
            "cs.mode=prune",
            "cs.target_sparsity=0.5",
            "cs.logit_reset=code",
            "cs.evaluate_at=best",
            "baselines=[shuffle_masks]",
            "seed=9",
        ],
    )
    search = cs.ContinuousSparsification.from_config(config, verbose=0)
    assert search.rounds == 4 and search.final_temperature == 50.0
    assert search.rewind == Step(3, "it") and search.mode == "prune"
    assert search.target_sparsity == 0.5 and search.logit_reset == "code"
    assert search.evaluate_at == "best" and search.seed == 9
    assert search.baselines == ("shuffle_masks",)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"final_temperature": 0.0}, r"'cs.final_temperature' must be a number > 0"),
        ({"rounds": 0}, r"'cs.rounds' must be an int >= 1; got 0"),
        ({"mode": "hybrid"}, r"'cs.mode' must be one of \['ticket', 'prune'\]"),
        ({"logit_reset": "none"}, r"'cs.logit_reset' must be one of"),
        ({"target_sparsity": 1.5}, r"'cs.target_sparsity' must be null or a number"),
        ({"rewind": "1.5ep"}, r"'cs.rewind' must be a step"),
        ({"baselines": ["nope"]}, r"'baselines' must be names from"),
    ],
)
def test_bad_search_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cs.ContinuousSparsification(**kwargs)


def test_bad_run_arguments_fail_before_training():
    x, y = images()
    soft = soft_convnet()
    before = [to_numpy(v).copy() for v in soft.weights]
    with pytest.raises(ValueError, match="not inside the first round"):
        _search(rewind="4ep").run(soft, x, y, epochs=3, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="must be an int >= 2"):
        _search().run(soft, x, y, epochs=1, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="initial_epoch"):
        _search().run(soft, x, y, epochs=3, batch_size=16, initial_epoch=1)
    with pytest.raises(ValueError, match="no soft-mask layer"):
        _search().run(small_convnet(), x, y, epochs=3, batch_size=16)
    for a, b in zip(before, soft.weights, strict=True):
        np.testing.assert_array_equal(a, to_numpy(b))


@pytest.mark.core_covered  # the IMP resume test is the core one
def test_interrupted_search_resumes_with_identical_ticket(tmp_path):
    x, y = images()
    kwargs = {"epochs": 2, "batch_size": 16, "verbose": 0}
    full = _search(rounds=3, checkpoint_dir=str(tmp_path / "full")).run(
        soft_convnet(), x, y, **kwargs
    )
    fits = []

    class Interrupt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(1)
            if len(fits) == 3:  # search round 2
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _search(rounds=3, checkpoint_dir=str(tmp_path / "cut")).run(
            soft_convnet(), x, y, callbacks=[Interrupt()], **kwargs
        )
    assert sorted(os.listdir(tmp_path / "cut")) == [
        "rewind_state.npz",
        "search_000",
        "search_001",
    ]
    resumed = _search(rounds=3, checkpoint_dir=str(tmp_path / "cut")).run(
        soft_convnet(), x, y, **kwargs
    )
    assert [r.round for r in resumed.rounds] == [0, 1, 2]
    for name, mask in full.ticket.masks.items():
        np.testing.assert_array_equal(resumed.ticket.masks[name], mask)
    for a, b in zip(full.ticket.weights, resumed.ticket.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.ticket_training.history == full.ticket_training.history
    for a, b in zip(full.rounds, resumed.rounds, strict=True):
        assert a.layers_remaining == b.layers_remaining
    same = [
        a.training.history == b.training.history
        for a, b in zip(full.rounds, resumed.rounds, strict=True)
    ]
    if BACKEND in ("jax", "torch") and same == [True, True, False]:
        # Known: on JAX and PyTorch, the first fit of a freshly compiled model
        # draws from the global RNG before training (Keras's symbolic build
        # takes a batch from the shuffled arrays), so the first resumed round
        # sees another data order than the uninterrupted run's round 2.
        pytest.xfail(f"{BACKEND}: the first resumed search round's data order differs")
    assert same == [True, True, True]


def test_nan_in_logits_stops_with_a_message_and_keeps_the_last_good_round(tmp_path):
    x, y = images()
    fits = []  # outside the callback: the search deep-copies callbacks every round

    class Poison(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(1)

        def on_epoch_end(self, epoch, logs=None):
            if len(fits) == 2 and epoch == 1:  # end of search round 1
                sync_state(self.model)
                layer = soft_layers(self.model)[1]
                values = to_numpy(layer.mask_logits).copy()
                values.flat[0] = np.nan
                layer.mask_logits.assign(values)

    with pytest.raises(
        RuntimeError, match="non-finite values in the mask logits of 'conv2'"
    ) as error:
        _search(rounds=3, checkpoint_dir=str(tmp_path)).run(
            soft_convnet(),
            x,
            y,
            epochs=2,
            batch_size=16,
            verbose=0,
            callbacks=[Poison()],
        )
    assert "last good checkpoint is search round 0" in str(error.value)
    assert (tmp_path / "search_000" / "record.json").exists()
    assert not (tmp_path / "search_001").exists()


@pytest.mark.slow  # ~9 s (a search round and the ticket): over this budget
def test_the_ticket_retrains_with_tweaks_and_the_search_without():
    from keras_lottery.config import RetrainConfig
    from keras_lottery.tweaks.losses import SmoothedSparseCategoricalCrossentropy
    from keras_lottery.tweaks.retraining import RetrainPlan

    losses = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            losses.append(self.model.loss)

    x, y = images(n=32)
    plan = RetrainPlan(RetrainConfig(tweaks=["swish", "label_smoothing"]))
    search = _search(rounds=1, retrain=plan)
    result = search.run(
        soft_convnet(), x, y, epochs=2, batch_size=16, callbacks=[Spy()]
    )
    search_loss, ticket_loss = losses
    assert not isinstance(search_loss, SmoothedSparseCategoricalCrossentropy)
    assert isinstance(ticket_loss, SmoothedSparseCategoricalCrossentropy)
    assert ticket_loss.from_logits and ticket_loss.alpha == 0.1
    # The ticket as it trained: its ReLU a swish.
    activations = [
        getattr(layer, "activation", None) for layer in result.network.layers
    ]
    assert keras.activations.silu in activations


def test_kd_and_lrsi_are_refused_for_cs_and_the_config_gives_the_plan():
    from keras_lottery.config import RetrainConfig
    from keras_lottery.tweaks.retraining import RetrainPlan

    with pytest.raises(ConfigError, match="no dense round to teach"):
        _search(retrain=RetrainPlan(RetrainConfig(tweaks=["kd"])))
    config = load_config(None, ["method=cs", "retrain.tweaks=[label_smoothing]"])
    search = cs.ContinuousSparsification.from_config(config)
    assert search.retrain.settings.tweaks == ["label_smoothing"]
    assert not cs.ContinuousSparsification().retrain
