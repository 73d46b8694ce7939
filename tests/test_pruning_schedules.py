"""keras_lottery.pruning_schedules: pure functions of the step, checked against
hand-computed values and tfmot's formula."""

import keras
import numpy as np
import pytest

from keras_lottery import models, pruning
from keras_lottery.errors import ConfigError
from keras_lottery.pruning_schedules import (
    ConstantSparsity,
    IterativeRounds,
    OneShot,
    PolynomialDecay,
    PruningSchedule,
    get,
)


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_polynomial_decay_hand_computed():
    # p = (t - 100) / 400; sparsity = 0.9 - 0.8 * (1 - p) ** 2
    s = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=500, power=2, frequency=50)
    expected = {100: 0.1, 200: 0.45, 300: 0.7, 400: 0.85, 500: 0.9, 900: 0.9, 0: 0.1}
    for step, value in expected.items():
        assert s.sparsity(step) == pytest.approx(value, abs=1e-6), step
        assert s.density(step) == pytest.approx(1 - value, abs=1e-6), step
    assert [t for t in range(0, 700, 25) if s.should_prune(t)] == list(
        range(100, 501, 50)
    )
    assert s(150) == (True, pytest.approx(0.9 - 0.8 * 0.875**2, abs=1e-6))


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_polynomial_decay_default_power_three():
    s = PolynomialDecay(0.5, 0.8, begin_step=0, end_step=1000)  # frequency 100
    assert s.sparsity(100) == pytest.approx(0.8 - 0.3 * 0.729, abs=1e-6)  # 0.5813
    assert s.sparsity(400) == pytest.approx(0.7352, abs=1e-6)
    assert s.sparsity(700) == pytest.approx(0.7919, abs=1e-6)
    assert not s.should_prune(1100) and not s.should_prune(50)


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_constant_sparsity_window_and_open_end():
    s = ConstantSparsity(0.6, begin_step=10, end_step=40, frequency=15)
    assert [t for t in range(60) if s.should_prune(t)] == [10, 25, 40]
    assert s.sparsity(0) == 0.6 and s.density(25) == pytest.approx(0.4)
    forever = ConstantSparsity(0.5, begin_step=0, frequency=100)
    assert forever.should_prune(10**9) and not forever.should_prune(10**9 + 1)


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_one_shot_and_iterative_rounds():
    once = OneShot(0.9, at_step=7)
    assert [t for t in range(20) if once.should_prune(t)] == [7]
    assert once.last_prune_step(0, 100) == 7 and once.last_prune_step(7, 100) is None
    rounds = IterativeRounds(0.2, rounds=3, steps_per_round=10, begin_step=5)
    assert [t for t in range(60) if rounds.should_prune(t)] == [5, 15, 25]
    assert [rounds.density(t) for t in (0, 5, 14, 15, 25, 1000)] == [
        1.0,
        0.8,
        0.8,
        0.8**2,
        0.8**3,
        0.8**3,
    ]


@pytest.mark.backend_core
@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    "schedule",
    [
        PolynomialDecay(0.0, 0.8, begin_step=3, end_step=40, frequency=7),
        ConstantSparsity(0.5, begin_step=2, end_step=-1, frequency=5),
        ConstantSparsity(0.5, begin_step=2, end_step=30, frequency=5),
        OneShot(0.3, at_step=12),
        IterativeRounds(0.5, rounds=4, steps_per_round=6, begin_step=1),
    ],
)
def test_last_prune_step_agrees_with_should_prune(schedule):
    for after in range(-1, 50, 3):
        for upto in range(after, 60, 4):
            brute = PruningSchedule.last_prune_step(schedule, after, upto)
            assert schedule.last_prune_step(after, upto) == brute, (after, upto)


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    "schedule",
    [
        PolynomialDecay(0.1, 0.9, begin_step=1, end_step=9, power=2.5, frequency=2),
        ConstantSparsity(0.25, begin_step=4),
        OneShot(0.5, at_step=3),
        IterativeRounds(0.2, rounds=5, steps_per_round=100),
    ],
)
def test_schedules_serialize(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    back = keras.saving.deserialize_keras_object(config)
    assert back == schedule and back is not schedule
    assert get(config) == schedule
    assert [back(t) for t in range(12)] == [schedule(t) for t in range(12)]


@pytest.mark.backend_neutral
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ConstantSparsity(1.0), "target_sparsity must be a number in"),
        (lambda: PolynomialDecay(0.0, 0.5, 10, 5), "end_step (5) must be >= begin"),
        (lambda: PolynomialDecay(0.0, 0.5, 0, -1), "needs an end_step"),
        (lambda: ConstantSparsity(0.5, frequency=0), "frequency must be >= 1"),
        (lambda: OneShot(0.5, at_step=-1), "at_step must be >= 0"),
        (lambda: IterativeRounds(0.2, rounds=0, steps_per_round=1), "rounds must"),
        (lambda: get("poly"), "Expected a PruningSchedule"),
    ],
)
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        make()


def _tfmot_kept(size: int, sparsity: float) -> int:
    """tfmot's pruning_impl._update_mask: k = max(round(f32(size) * (1 - s)), 1)."""
    f32 = np.float32
    return max(int(np.round(f32(size) * (f32(1.0) - f32(sparsity)))), 1)


def test_layerwise_density_trajectory_matches_tfmot_on_lenet_300_100():
    # tfmot prunes each layer to the schedule's sparsity; layerwise scope does
    # the same, so the kept counts per prune step must agree exactly.
    model = models.get("lenet_300_100", num_classes=10)
    schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=1000, frequency=100)
    sizes = {
        layer.name: layer.get_mask().size for layer in pruning.masked_layers(model)
    }
    assert sorted(sizes.values()) == [1000, 30000, 235200]
    for step in range(0, 1001, 100):
        masks = pruning.magnitude_masks_to_density(
            model, schedule.density(step), scope="layerwise"
        )
        kept = {name: int(mask.sum()) for name, mask in masks.items()}
        expected = {
            n: _tfmot_kept(size, schedule.sparsity(step)) for n, size in sizes.items()
        }
        assert kept == expected, step
    # Hand-computed at the end: 10% of each layer.
    assert sorted(kept.values()) == [100, 3000, 23520]


# Kept counts per layer that tfmot 0.8.1 (tf_keras 2.21) reached with
# PolynomialDecay(0.0, 0.8, begin_step=0, end_step=300, frequency=100), copied
# from `tfmot_overhead.py --gradual --repeats 2` (benchmarks/results).
TFMOT_KEPT = {
    "lenet_300_100": {100: [102791, 13111, 437], 200: [54009, 6889, 230]},
    "small_cnn": {100: [63, 2014, 3496], 200: [33, 1058, 1837]},
}


def _small_cnn():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )


@pytest.mark.parametrize("network", sorted(TFMOT_KEPT))
def test_kept_counts_equal_those_tfmot_reached(network):
    from keras_lottery.conversion import prunable

    model = (
        models.get("lenet_300_100", num_classes=10)
        if network == "lenet_300_100"
        else prunable(_small_cnn())
    )
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=300, frequency=100)
    for step, expected in TFMOT_KEPT[network].items():
        masks = pruning.magnitude_masks_to_density(
            model, schedule.density(step), scope="layerwise"
        )
        assert [int(m.sum()) for m in masks.values()] == expected, step
