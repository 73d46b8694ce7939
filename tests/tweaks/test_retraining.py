"""keras_lottery.tweaks.retraining and .registry: composing the tweaks."""

import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.config import RetrainConfig
from keras_lottery.errors import ConfigError
from keras_lottery.methods.imp import IterativeMagnitudePruning
from keras_lottery.tweaks import registry
from keras_lottery.tweaks.distill import Distiller
from keras_lottery.tweaks.losses import SmoothedSparseCategoricalCrossentropy
from keras_lottery.tweaks.retraining import (
    RetrainPlan,
    copy_layer_weights,
    label,
    settings_name,
)
from keras_lottery.tweaks.skips import ExtraSkipFade, LinearFade
from tests.helpers import classification_data, mlp, to_numpy


@pytest.fixture
def fake_swish(monkeypatch):
    """The swish transform as a plain copy (the real one lives in
    keras_lottery.tweaks.activations); records the models it made."""
    made = []

    def transform(model, settings):
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        made.append(copy)
        return copy

    monkeypatch.setattr(registry.get("swish"), "transform", transform)
    return made


def _compiled(model):
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_registry_names_and_config_checks():
    assert registry.names()[:6] == registry.SOFT_ACTIVATIONS
    assert {"extra_skips", "label_smoothing", "kd", "lrsi"} <= set(registry.names())
    with pytest.raises(ConfigError, match=r"'retrain.tweaks' must be names from"):
        RetrainConfig(tweaks=["relu"])
    with pytest.raises(ConfigError, match="at most one soft activation"):
        RetrainConfig(tweaks=["swish", "gelu"])


def test_skip_settings_are_checked_and_fade_through_a_callback():
    with pytest.raises(
        ConfigError, match="'retrain.skip_bn_gamma' must be a number >= 0"
    ):
        RetrainConfig(skip_bn_gamma=-1)
    with pytest.raises(ConfigError, match="'retrain.skip_fade_epochs' must be an int"):
        RetrainConfig(skip_fade_epochs=1.5)
    settings = RetrainConfig(tweaks=["extra_skips"], skip_alpha=0.5, skip_fade_epochs=4)
    [fade] = registry.get("extra_skips").callbacks(None, settings)
    assert isinstance(fade, ExtraSkipFade) and isinstance(fade.schedule, LinearFade)
    assert [fade.schedule(i) for i in (0, 2, 4)] == [0.5, 0.25, 0.0]
    assert registry.get("extra_skips").callbacks(None, RetrainConfig()) == []


def test_settings_added_later_keep_existing_folder_names_at_their_defaults():
    # Folder names of retrainings run before skip_bn_gamma / skip_fade_epochs.
    assert settings_name(RetrainConfig(tweaks=["extra_skips"])) == (
        "retrain_281d811293e4"
    )
    assert settings_name(RetrainConfig(tweaks=["swish"])) == "retrain_159a2bb2b193"
    silent = RetrainConfig(tweaks=["extra_skips"], skip_bn_gamma=0.0)
    assert settings_name(silent) != settings_name(RetrainConfig(tweaks=["extra_skips"]))
    assert label(silent).startswith("extra_skips@")


def test_loss_tweak_swaps_the_compiled_loss_keeping_from_logits():
    model = _compiled(mlp())
    plan = RetrainPlan(RetrainConfig(tweaks=["label_smoothing"], label_smoothing=0.2))
    config = plan.compile_config(model.get_compile_config())
    loss = keras.saving.deserialize_keras_object(config["loss"])
    assert isinstance(loss, SmoothedSparseCategoricalCrossentropy)
    assert loss.alpha == 0.2 and loss.from_logits
    assert RetrainPlan().compile_config({"loss": "mse"}) == {"loss": "mse"}


def test_misfits_are_config_errors_before_training(monkeypatch):
    with pytest.raises(ConfigError, match="kd, whose teacher is the run's trained"):
        RetrainPlan(RetrainConfig(tweaks=["kd"])).check(mlp(), has_teacher=False)

    def no_blocks(model, settings):
        raise ValueError("the model has no residual basic blocks")

    monkeypatch.setattr(registry.get("extra_skips"), "transform", no_blocks)
    plan = RetrainPlan(RetrainConfig(tweaks=["extra_skips"]))
    with pytest.raises(ConfigError, match="'extra_skips', which does not fit"):
        plan.check(mlp(), has_teacher=True)


def test_copy_layer_weights_names_a_missing_layer():
    with pytest.raises(ValueError, match="no layer 'fc1'"):
        copy_layer_weights(mlp(name_prefix="other_"), mlp())


@pytest.mark.backend_neutral
def test_imp_retrains_tickets_with_tweaks_but_not_the_dense_round(fake_swish):
    x, y = classification_data(n=64)
    settings = RetrainConfig(tweaks=["swish", "label_smoothing", "kd"])
    imp = IterativeMagnitudePruning(
        fraction=0.5, rounds=1, baselines=[], retrain=RetrainPlan(settings), verbose=0
    )
    fits = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(self.model)

    model = _compiled(mlp())
    dense_loss = model.loss
    result = imp.run(model, x, y, epochs=2, batch_size=32, verbose=0, callbacks=[Spy()])
    # The dense round trains the model itself, with its own loss.
    assert fits[0] is model and type(fits[0].loss) is type(dense_loss)
    # The ticket trains a transformed copy inside a Distiller (teacher: the
    # dense network), with the smoothed loss; its trained values land back in
    # the model, which keeps the ticket's masks.
    assert type(fits[1]) is Distiller and fits[1].student is fake_swish[0]
    assert isinstance(fits[1].loss, SmoothedSparseCategoricalCrossentropy)
    assert fits[1].loss.from_logits
    pruning.sync_state(model)
    trained = fake_swish[0].get_layer("fc1").raw_kernel
    np.testing.assert_array_equal(
        to_numpy(model.get_layer("fc1").raw_kernel), to_numpy(trained)
    )
    assert result.rounds[1].fraction_remaining == pytest.approx(
        pruning.sparsity_report(model).fraction_remaining
    )
    np.testing.assert_array_equal(
        result.ticket.masks["fc1"], pruning.get_masks(fake_swish[0])["fc1"]
    )
    teacher = fits[1].teacher
    np.testing.assert_array_equal(
        to_numpy(teacher.get_layer("fc1").mask), np.ones((8, 16))
    )
