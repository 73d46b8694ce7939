"""keras_lottery.config.parsing: YAML files and ``section.key=value`` overrides,
every key and type checked against the config dataclasses."""

import os

import pytest
import yaml

from keras_lottery import models
from keras_lottery.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    from_dict,
    load_config,
)

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def test_defaults_and_yaml_round_trip(tmp_path):
    config = load_config(None)
    assert config == RunConfig()
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config
    changed = load_config(None, ["method=cs", "cs.rounds=2", "pruning.rounds=4"])
    path.write_text(changed.to_yaml())
    assert load_config(path) == changed != config


def test_overrides_are_typed_and_nested():
    config = load_config(
        None,
        [
            "pruning.rounds=3",
            "training.learning_rate=1e-3",
            "pruning.layer_fractions={output: 0.1}",
            "model.options={hidden: [10, 5]}",
            "baselines=[]",
            "data.train_size=",
        ],
    )
    assert config.pruning.rounds == 3
    assert config.training.learning_rate == pytest.approx(1e-3)
    assert isinstance(config.training.learning_rate, float)
    assert config.pruning.layer_fractions == {"output": 0.1}
    assert config.model.options == {"hidden": [10, 5]}
    assert config.baselines == [] and config.data.train_size is None


def test_overrides_apply_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pruning: {rounds: 2, fraction: 0.5}\nseed: 3\n")
    config = load_config(path, ["pruning.rounds=5"])
    assert (config.pruning.rounds, config.pruning.fraction, config.seed) == (5, 0.5, 3)


def test_int_is_accepted_for_float():
    assert load_config(None, ["training.learning_rate=1"]).training.learning_rate == 1.0


@pytest.mark.parametrize(
    "data,match",
    [
        ({"pruning": {"fractoin": 0.2}}, r"pruning\.fractoin.*Allowed: .*fraction"),
        ({"nope": 1}, r"Unknown config key\(s\): nope"),
        ({"pruning": {"rounds": "three"}}, r"'pruning.rounds' must be an int or null"),
        ({"pruning": {"fraction": "lots"}}, r"'pruning.fraction' must be a number"),
        ({"training": {"nesterov": 1}}, r"'training.nesterov' must be true/false"),
        ({"baselines": "random_reinit"}, r"'baselines' must be a list of a string"),
        ({"pruning": {"layer_fractions": {"x": "a"}}}, r"'pruning.layer_fractions.x'"),
        ({"training": 3}, r"'training' must be a mapping"),
        ({"seed": True}, r"'seed' must be an int; got bool True"),
    ],
)
def test_unknown_and_ill_typed_keys_are_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(data)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["pruning.rounds"])
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_a_file_must_hold_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_config(path)


@pytest.mark.parametrize(
    "name", sorted(n[:-5] for n in os.listdir(CONFIGS) if n.endswith(".yaml"))
)
def test_shipped_configs_load(name):
    path = os.path.join(CONFIGS, f"{name}.yaml")
    config = load_config(path)
    assert config.method in ("imp", "cs")
    config.method_config.check_for_run()
    with open(path) as handle:
        assert set(yaml.safe_load(handle)) <= set(RunConfig().to_dict())
    models.get(config.model.name, **config.model.options)  # valid options


def test_demo_config_file_matches_the_demo_command():
    from keras_lottery.cli import demo_config

    assert load_config(os.path.join(CONFIGS, "demo_digits.yaml")) == demo_config()


def test_rewind_points_accept_zero_as_a_number():
    config = load_config(None, ["pruning.rewind=0", "cs.rewind=0"])
    assert config.pruning.rewind == 0 and config.cs.rewind == 0
    with pytest.raises(
        ConfigError, match="'pruning.rewind' must be a string or an int"
    ):
        load_config(None, ["pruning.rewind=[1]"])
