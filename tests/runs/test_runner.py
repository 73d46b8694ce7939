"""keras_lottery.runs.runner: hash-named run folders; bad input fails before
any folder exists."""

import os

import keras
import numpy as np
import pytest

from keras_lottery.config import ConfigError, load_config
from keras_lottery.runs import runner
from keras_lottery.soft_masks import LOGITS


@pytest.mark.parametrize(
    "override,match",
    [
        (
            "pruning.layer_fractions={nope: 0.1}",
            "pruning.layer_fractions key 'nope' matches no masked layer",
        ),
        ("pruning.layers=[output, nope]", r"pruning.layers: .*\['nope'\]"),
        ("pruning.exclude=[nope]", r"pruning.exclude: .*\['nope'\]"),
    ],
)
def test_values_checked_against_the_model_fail_before_the_run_folder(
    tiny_config, tmp_path, override, match
):
    config = load_config(tiny_config, [override])  # a valid config on its own
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match=match):
        runner.run(config, out=str(out), verbose=0)
    assert not os.path.exists(runner.run_dir_for(config, str(out)))
    assert not out.exists()


def test_a_value_changed_after_loading_fails_in_the_driver_before_the_folder(
    tiny_config, tmp_path
):
    config = load_config(tiny_config)
    config.pruning.fraction = 1.5  # bypasses the config's own check
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="fraction"):
        runner.run(config, out=str(out), verbose=0)
    assert not out.exists()


def test_cs_layers_outside_the_model_fail_before_the_run_folder(
    cs_mlp_config, tmp_path
):
    config = load_config(cs_mlp_config, ["cs.layers=[output, nope]"])
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match="nope"):
        runner.run(config, out=str(out), verbose=0)
    assert not out.exists()


@pytest.mark.backend_neutral
def test_unknown_driver_options_fail_before_the_run_folder(cs_mlp_config, tmp_path):
    out = tmp_path / "runs"
    config = load_config(cs_mlp_config)
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['extra_rewinds'\]"):
        runner.run(config, out=str(out), extra_rewinds=["1ep"])
    assert not out.exists()


@pytest.mark.backend_neutral
def test_run_folder_names_and_saved_configs(tiny_config, tmp_path):
    config = load_config(tiny_config)
    directory = runner.run_dir_for(config, "runs")
    assert directory == os.path.join("runs", config.hashname())
    assert os.path.basename(directory).startswith("imp_")
    other = load_config(tiny_config, ["seed=1"])
    assert runner.run_dir_for(other, "runs") != directory
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is not a run folder"):
        runner.load_config_of(str(tmp_path))
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    assert runner.load_config_of(str(tmp_path)) == config


def _values(model):
    return [(v.path, keras.ops.convert_to_numpy(v)) for v in model.weights]


@pytest.mark.backend_neutral
def test_prepare_builds_the_seeded_model_the_method_trains(tiny_config, cs_mlp_config):
    config = load_config(tiny_config)
    recipe, model = runner.prepare(config)
    assert recipe.config == config and model.optimizer is not None
    _, again = runner.prepare(config)
    for (path, a), (other, b) in zip(_values(model), _values(again), strict=True):
        assert path == other
        np.testing.assert_array_equal(a, b, err_msg=path)
    _, reseeded = runner.prepare(load_config(tiny_config, ["seed=1"]))
    assert not all(
        np.array_equal(a, b)
        for (_, a), (_, b) in zip(_values(model), _values(reseeded), strict=True)
    )
    assert not any(LOGITS in path for path, _ in _values(model))
    _, soft = runner.prepare(load_config(cs_mlp_config))  # CS: soft masks
    assert any(LOGITS in path for path, _ in _values(soft))
