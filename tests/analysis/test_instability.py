"""Instability analysis (keras_lottery.analysis.instability): seeds, settings,
copies trained from one state, and a cached analysis that resumes."""

import importlib
import json

import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.analysis import instability as run_instability
from keras_lottery.analysis import pair_seeds, settings_with, train_copy
from keras_lottery.analysis.interpolation import interpolation_curve
from keras_lottery.config import ConfigError, StabilityConfig, load_config
from keras_lottery.data import Splits
from keras_lottery.recipes import Recipe
from keras_lottery.rewind import capture_state

# ``keras_lottery.analysis.instability`` is the function; this is the module.
module = importlib.import_module("keras_lottery.analysis.instability")

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _state(model):
    return capture_state(model)


def _tiny_recipe(**overrides):
    rng = np.random.default_rng(0)
    x = rng.random((200, 6, 6, 1)).astype("float32")
    flat = x.reshape(200, -1)
    y = (flat[:, :18].mean(1) > flat[:, 18:].mean(1)).astype("int32")
    splits = Splits(x[:140], y[:140], x[140:160], y[140:160], x[160:], y[160:])
    config = load_config(
        None,
        [
            "model.options={hidden: [16, 8]}",
            "training.batch_size=20",
            "training.duration=2ep",
            "training.learning_rate=0.01",
        ]
        + [f"{k}={v}" for k, v in overrides.items()],
    )
    return Recipe(config, splits=splits)


def _barrier(errors):
    """The error barrier, computed here independently of the library."""
    return max(errors) - (errors[0] + errors[-1]) / 2


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(pairs=1, seeds=[(3, 3)]), "different data-order seeds"),
        (dict(pairs=1, seeds=[(3, -1)]), "seed must be an int >= 0"),
        (dict(pairs=1, seeds=[(1, 2, 3)]), "pairs"),
        (dict(pairs=1, seeds=[]), "empty"),
        (dict(pairs=0), "pairs must be an int >= 1"),
    ],
)
def test_bad_seeds_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pair_seeds(**kwargs)


def test_default_seeds_pair_distinct_copies():
    assert pair_seeds(3, first_seed=1) == [(1, 2), (3, 4), (5, 6)]
    assert pair_seeds(1, seeds=[(4, 4)], allow_equal_seeds=True) == [(4, 4)]


def test_settings_with_replaces_fields_and_refuses_unknown_names():
    base = StabilityConfig(pairs=3)
    changed = settings_with(base, {"points": 11})
    assert (changed.pairs, changed.points) == (3, 11)
    assert base.points == 30  # not modified
    assert settings_with(None, {}) == StabilityConfig()
    with pytest.raises(
        ValueError, match=r"Unknown stability setting\(s\) \['pionts'\]"
    ):
        settings_with(base, {"pionts": 3})


def test_equal_seeds_and_unknown_settings_fail_before_training():
    recipe = _tiny_recipe()
    model = recipe.build_model()
    with pytest.raises(ValueError, match="different data-order seeds"):
        run_instability(model, recipe, seeds=[(2, 2)])
    with pytest.raises(ValueError, match="Unknown stability setting"):
        run_instability(model, recipe, pionts=3)
    with pytest.raises(ConfigError, match="stability.points"):
        run_instability(model, recipe, points=1)
    with pytest.raises(ValueError, match="start_step must be in"):
        run_instability(model, recipe, start_step=recipe.total_steps)
    with pytest.raises(ValueError, match="start must be a Keras model or a Ticket"):
        run_instability("model", recipe)


# --------------------------------------------------------------------------- copies


def test_copies_with_the_same_seed_have_zero_instability():
    recipe = _tiny_recipe()
    keras.utils.set_random_seed(0)
    start = recipe.build_model()
    masks = pruning.prune_magnitude(start, 0.5)
    before = _state(start)
    k = 3  # start mid-epoch: 7 steps per epoch
    copies = [train_copy(start, recipe, s, start_step=k) for s in (5, 5, 6)]
    for before_value, after in zip(before, _state(start), strict=True):
        np.testing.assert_array_equal(before_value, after)  # start untouched
    for model, record in copies:
        assert record.steps == recipe.total_steps - k
        for layer in pruning.masked_layers(model):
            np.testing.assert_array_equal(layer.get_mask(), masks[layer.name])
            kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
            assert np.all(kernel[~masks[layer.name]] == 0)
    same, other = _state(copies[0][0]), _state(copies[1][0])
    for u, v in zip(same, other, strict=True):
        np.testing.assert_allclose(u, v, atol=1e-6)
    assert not all(
        np.allclose(u, v) for u, v in zip(same, _state(copies[2][0]), strict=True)
    )
    data = {"test": recipe.test_data, "train": recipe.train_eval_data()}
    curve = interpolation_curve(copies[0][0], copies[1][0], data, points=5)
    assert curve.barrier("test") == pytest.approx(0.0, abs=1e-6)
    assert curve.barrier("train") == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow  # 25 s in the suite: copies trained twice
def test_instability_with_a_cache_resumes_without_retraining(
    tmp_path, monkeypatch, capsys
):
    recipe = _tiny_recipe()
    keras.utils.set_random_seed(0)
    start = recipe.build_model()
    pruning.prune_magnitude(start, 0.5)
    seeds = [(1, 2), (1, 3)]  # copy 1 serves both pairs
    trained = []
    original = module.train_copy

    def interrupted(*args, **kwargs):
        trained.append(args[2])
        if args[2] == 3:
            raise KeyboardInterrupt  # interrupted while training copy 3
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "train_copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_instability(start, recipe, seeds=seeds, points=3, cache_dir=tmp_path)
    assert trained == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("pair_*")) == ["pair_s1_s2.json"]
    assert sorted(p.name for p in tmp_path.glob("copy_*")) == [
        "copy_seed1.json",
        "copy_seed1.npz",
        "copy_seed2.json",
        "copy_seed2.npz",
    ]
    saved = json.loads((tmp_path / "pair_s1_s2.json").read_text())
    mtime = (tmp_path / "pair_s1_s2.json").stat().st_mtime_ns

    def counting(*args, **kwargs):
        trained.append(args[2])
        return original(*args, **kwargs)

    trained.clear()
    capsys.readouterr()
    monkeypatch.setattr(module, "train_copy", counting)
    result = run_instability(
        start, recipe, seeds=seeds, points=3, cache_dir=tmp_path, verbose=1
    )
    assert trained == [3]  # copies 1, 2 and pair (1, 2) come from the cache
    assert (tmp_path / "pair_s1_s2.json").stat().st_mtime_ns == mtime
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2
    assert printed[0].startswith(
        f"[keras_lottery] copy (order seed 3) trained steps 0..{recipe.total_steps}: "
        f"{recipe.total_steps} steps, "
    )
    barrier_3 = result.pairs[1].barrier("test")
    assert printed[1].startswith(
        f"[keras_lottery] pair 2/2 (seeds 1, 3): instability test "
        f"{100 * barrier_3:.2f} pp, train "
    )

    assert [p.seeds for p in result.pairs] == seeds
    assert result.pairs[0].to_dict() == saved["result"]  # the saved pair, as is
    copy_1, copy_3 = result.pairs[1].copies
    assert copy_1 == saved["result"]["copies"][0]  # copy 1 loaded, not retrained
    assert copy_3["order_seed"] == 3 and copy_3["steps"] == recipe.total_steps
    assert result.start_step == 0 and result.threshold == 0.02
    assert result.settings["seeds"] == [[1, 2], [1, 3]]
    assert result.settings["points"] == 3
    assert set(result.splits) == {"test", "train"}
    for pair in result.pairs:
        assert pair.curve.alphas == [0.0, 0.5, 1.0]
    # The summary statistics, from the curves' errors.
    barriers = [_barrier(p.curve.errors["test"]) for p in result.pairs]
    ends = [
        (p.curve.errors["test"][0] + p.curve.errors["test"][-1]) / 2
        for p in result.pairs
    ]
    mean = (barriers[0] + barriers[1]) / 2
    stats = result.stats("test")
    assert stats.pop("stable") is bool(mean < 0.02)
    assert stats == pytest.approx(
        {
            "mean": mean,
            "std": abs(barriers[0] - barriers[1]) / np.sqrt(2),
            "min": min(barriers),
            "max": max(barriers),
            "endpoint_error": (ends[0] + ends[1]) / 2,
        },
        abs=1e-12,
    )

    trained.clear()
    again = run_instability(start, recipe, seeds=seeds, points=5, cache_dir=tmp_path)
    assert trained == [] and len(again.pairs[0].curve.alphas) == 5  # re-evaluated
    saved = json.loads((tmp_path / "pair_s1_s2.json").read_text())
    assert saved["settings"]["points"] == 5
    assert saved["result"] == again.pairs[0].to_dict()
    other = recipe.build_model()  # another starting state: refused
    with pytest.raises(ValueError, match="another starting state"):
        run_instability(other, recipe, seeds=seeds, points=3, cache_dir=tmp_path)
