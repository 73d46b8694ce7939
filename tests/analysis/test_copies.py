"""The on-disk cache of an instability analysis (keras_lottery.analysis.copies):
file names, round trips and the key that ties a folder to one analysis."""

import json
import types

import numpy as np
import pytest

from keras_lottery._io import load_arrays
from keras_lottery.analysis import copies
from keras_lottery.analysis.copies import CopyCache, copy_summary
from keras_lottery.analysis.interpolation import InterpolationCurve
from keras_lottery.analysis.results import PairResult
from keras_lottery.config import load_config
from keras_lottery.rewind import capture_state
from keras_lottery.training import TrainingRecord
from tests.helpers import mlp

pytestmark = pytest.mark.backend_neutral

CURVE_SETTINGS = {"points": 3, "train_eval_limit": 100, "bn_reestimate_batches": 0}


def _recipe(*overrides):
    """What the cache reads of a recipe: its configuration."""
    return types.SimpleNamespace(config=load_config(None, list(overrides)))


def _summary(seed):
    record = TrainingRecord(
        history={"loss": [1.0, 0.5]},
        epochs=2,
        steps=14,
        wall_time=1.5,
        best_epoch=None,
        final={"accuracy": 0.75, "val_accuracy": 0.5},
        best={},
        test=None,
    )
    return copy_summary(seed, record)


def _pair(a, b):
    curve = InterpolationCurve(
        [0.0, 0.5, 1.0], {"test": [0.1, 0.3, 0.12]}, {"test": [0.5, 0.9, 0.6]}
    )
    return PairResult((a, b), curve, [_summary(a), _summary(b)])


def test_copy_summary_keeps_seed_steps_time_and_final_metrics():
    assert _summary(4) == {
        "order_seed": 4,
        "steps": 14,
        "epochs": 2,
        "wall_time": 1.5,
        "final": {"accuracy": 0.75, "val_accuracy": 0.5},
    }


def test_copies_and_pairs_round_trip_under_their_file_names(tmp_path):
    template = mlp()
    cache = CopyCache(tmp_path / "copies", template, _recipe(), 3)
    assert cache.key["start_step"] == 3
    assert cache.copy(5) is None and cache.pair(5, 6, CURVE_SETTINGS) is None
    state = capture_state(template)
    cache.save_copy(5, state, _summary(5))
    pair = _pair(5, 6)
    cache.save_pair(pair, CURVE_SETTINGS)
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == [
        "copy_seed5.json",
        "copy_seed5.npz",
        "pair_s5_s6.json",
    ]
    loaded, summary = cache.copy(5)
    assert summary == _summary(5)
    assert len(loaded) == len(state)
    for got, want in zip(loaded, state, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert cache.pair(5, 6, CURVE_SETTINGS) == pair
    assert cache.pair(6, 5, CURVE_SETTINGS) is None  # the order of a pair counts
    # Other curve settings: evaluated again from the copies, no error.
    assert cache.pair(5, 6, {**CURVE_SETTINGS, "points": 11}) is None


def test_a_damaged_copy_is_refused_naming_the_file(tmp_path):
    from keras_lottery.errors import CorruptFileError

    template = mlp()
    cache = CopyCache(tmp_path, template, _recipe(), 0)
    cache.save_copy(1, capture_state(template), _summary(1))
    other = [np.zeros_like(a) for a in capture_state(template)]
    CopyCache(tmp_path / "other", template, _recipe(), 0).save_copy(1, other, {})
    (tmp_path / "copy_seed1.npz").write_bytes(
        (tmp_path / "other" / "copy_seed1.npz").read_bytes()
    )
    with pytest.raises(CorruptFileError, match="copy_seed1.npz is not a valid"):
        cache.copy(1)


def test_a_cache_folder_written_by_hand_loads(tmp_path):
    # The layout earlier versions wrote: arr_0, arr_1, ... in copy_seed{S}.npz,
    # {"key", "summary"} in copy_seed{S}.json, {"key", "settings", "result"} in
    # pair_s{A}_s{B}.json.
    template = mlp()
    state = capture_state(template)
    cache = CopyCache(tmp_path, template, _recipe(), 0)
    np.savez(tmp_path / "copy_seed2.npz", *state)
    summary = {"order_seed": 2, "steps": 9, "epochs": 1, "wall_time": 0.1, "final": {}}
    (tmp_path / "copy_seed2.json").write_text(
        json.dumps({"key": cache.key, "summary": summary})
    )
    result = {
        "seeds": [2, 4],
        "curve": {"alphas": [0.0, 1.0], "errors": {"test": [0.2, 0.1]}, "losses": {}},
        "copies": [summary, summary],
        "barriers": {"test": 0.05},
    }
    (tmp_path / "pair_s2_s4.json").write_text(
        json.dumps({"key": cache.key, "settings": CURVE_SETTINGS, "result": result})
    )
    fresh = CopyCache(tmp_path, template, _recipe(), 0)
    loaded, got = fresh.copy(2)
    assert got == summary
    for a, b in zip(loaded, load_arrays(tmp_path / "copy_seed2.npz"), strict=True):
        np.testing.assert_array_equal(a, b)
    pair = fresh.pair(2, 4, CURVE_SETTINGS)
    assert pair.seeds == (2, 4) and pair.curve.errors == {"test": [0.2, 0.1]}
    assert pair.copies == [summary, summary]


def test_key_fingerprints_the_start_and_the_recipe_without_stability(tmp_path):
    template = mlp()
    cache = CopyCache(tmp_path, template, _recipe(), 0)
    cache.save_copy(1, capture_state(template), _summary(1))
    cache.save_pair(_pair(1, 2), CURVE_SETTINGS)
    # Analysis settings do not change the key: the copies are reused.
    same = CopyCache(tmp_path, template, _recipe("stability.points=11"), 0)
    assert same.key == cache.key and same.copy(1) is not None
    for other in (
        CopyCache(tmp_path, mlp(), _recipe(), 0),  # another initialization
        CopyCache(tmp_path, template, _recipe("seed=3"), 0),
        CopyCache(tmp_path, template, _recipe(), 4),
    ):
        assert other.key != cache.key
        with pytest.raises(ValueError, match="another starting state or recipe"):
            other.copy(1)
        assert other.pair(1, 2, CURVE_SETTINGS) is None


def test_fingerprint_and_recipe_key_are_stable():
    # Fixed values: a change would orphan every existing cache folder.
    state = [np.arange(6, dtype="float32").reshape(2, 3), np.array([True, False])]
    assert copies._fingerprint(state) == "6403e4228a05943f"
    config = {"seed": 3, "training": {"batch_size": 20}}
    recipe = types.SimpleNamespace(config=types.SimpleNamespace(to_dict=lambda: config))
    assert copies._recipe_key(recipe) == "9be815fc81b50dfe"
    with_stability = {**config, "stability": {"points": 5}}
    recipe.config.to_dict = lambda: dict(with_stability)
    assert copies._recipe_key(recipe) == "9be815fc81b50dfe"
