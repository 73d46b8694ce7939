"""Tests of the configuration's ``stability`` section, moved out of
tests/test_stability.py; they belong in tests/config/ (not collected here:
the file name does not start with ``test_``)."""

import pytest

from keras_lottery.config import ConfigError, RunConfig, StabilityConfig, load_config

pytestmark = pytest.mark.backend_neutral


def test_stability_config_section_is_typed_and_not_part_of_the_run_hash():
    plain = RunConfig()
    changed = load_config(None, ["stability.points=11", "stability.threshold=0.05"])
    assert changed.stability.points == 11 and changed.stability.threshold == 0.05
    assert changed.hashname() == plain.hashname()
    assert load_config(None, ["seed=3"]).hashname() != plain.hashname()
    for override, match in (
        ("stability.points=1", "stability.points"),
        ("stability.pairs=0", "stability.pairs"),
        ("stability.threshold=-0.1", "stability.threshold"),
        ("stability.train_eval_limit=0", "stability.train_eval_limit"),
        ("stability.pionts=3", "stability.pionts"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(None, [override])
    assert StabilityConfig().points == 30 and StabilityConfig().threshold == 0.02
