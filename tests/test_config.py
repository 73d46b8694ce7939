import os

import pytest
import yaml

from keras_lottery import models
from keras_lottery.config import ConfigError, RunConfig, from_dict, load_config


def test_defaults_and_yaml_round_trip(tmp_path):
    config = load_config(None)
    assert config == RunConfig()
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


def test_overrides_are_typed_and_nested():
    config = load_config(
        None,
        [
            "pruning.rounds=3",
            "training.learning_rate=1e-3",
            "pruning.layer_fractions={output: 0.1}",
            "model.options={hidden: [10, 5]}",
            "baselines=[]",
        ],
    )
    assert config.pruning.rounds == 3
    assert config.training.learning_rate == pytest.approx(1e-3)
    assert config.pruning.layer_fractions == {"output": 0.1}
    assert config.model.options == {"hidden": [10, 5]}
    assert config.baselines == []


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
    ],
)
def test_unknown_and_ill_typed_keys_are_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(data)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["pruning.rounds"])


def test_hash_names_the_non_default_fields_only():
    a = load_config(None, ["pruning.rounds=3"])
    b = load_config(None, ["pruning.rounds=3", "seed=0"])  # 0 is the default
    c = load_config(None, ["pruning.rounds=4"])
    assert a.hashname() == b.hashname() != c.hashname()
    assert a.hashname().startswith("imp_") and len(a.hashname()) == 16
    assert a.non_default() == {"pruning": {"rounds": 3}}


CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


@pytest.mark.parametrize(
    "name", sorted(n[:-5] for n in os.listdir(CONFIGS) if n.endswith(".yaml"))
)
def test_shipped_configs_load(name):
    path = os.path.join(CONFIGS, f"{name}.yaml")
    config = load_config(path)
    assert config.method in ("imp", "cs")
    if config.method == "imp":
        assert config.pruning.rounds or config.pruning.target_sparsity
    with open(path) as handle:
        assert set(yaml.safe_load(handle)) <= set(RunConfig().to_dict())
    models.get(config.model.name, **config.model.options)  # valid options


def test_demo_config_file_matches_the_demo_command():
    import os

    from keras_lottery.cli import demo_config

    path = os.path.join(os.path.dirname(__file__), "..", "configs", "demo_digits.yaml")
    assert load_config(path) == demo_config()


def test_rewind_points_accept_zero_as_a_number():
    config = load_config(None, ["pruning.rewind=0", "cs.rewind=0"])
    assert config.pruning.rewind == 0 and config.cs.rewind == 0
    with pytest.raises(
        ConfigError, match="'pruning.rewind' must be a string or an int"
    ):
        load_config(None, ["pruning.rewind=[1]"])


def test_hash_ignores_the_sections_a_method_does_not_use():
    assert load_config(None).hashname() == load_config(None).hashname()
    assert load_config(None).non_default() == {}
    imp = load_config(None, ["pruning.rounds=3"])
    assert (
        imp.hashname()
        == load_config(None, ["pruning.rounds=3", "cs.rounds=5"]).hashname()
    )
    cs = load_config(None, ["method=cs", "cs.rounds=2"])
    other = load_config(None, ["method=cs", "cs.rounds=2", "pruning.rounds=9"])
    assert cs.hashname() == other.hashname() and cs.hashname().startswith("cs_")
    assert cs.hashname() != load_config(None, ["method=cs"]).hashname()
