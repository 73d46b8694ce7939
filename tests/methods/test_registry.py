"""keras_lottery.methods.registry: ticket-finding methods by name."""

import dataclasses

import pytest

from keras_lottery import paths
from keras_lottery.config import METHOD_SECTIONS, load_config
from keras_lottery.methods import registry
from keras_lottery.methods.cs import ContinuousSparsification
from keras_lottery.methods.imp import IterativeMagnitudePruning
from tests.helpers import mlp

pytestmark = pytest.mark.backend_neutral


def test_the_built_in_methods_are_registered_with_their_sections():
    assert registry.names() == ["cs", "imp"]
    assert sorted(METHOD_SECTIONS) == registry.names()
    imp, cs = registry.get("imp"), registry.get("cs")
    assert imp.driver is IterativeMagnitudePruning
    assert cs.driver is ContinuousSparsification
    assert (imp.plot_name, cs.plot_name) == (paths.ACCURACY_PLOT, paths.CS_PLOT)
    assert imp.driver_options == ("extra_rewinds",) and cs.driver_options == ()
    assert all(registry.get(name).name == name for name in registry.names())


def test_unknown_method_names_the_registered_ones():
    with pytest.raises(
        ValueError, match=r"Unknown method 'x'; registered: \['cs', 'imp'\]"
    ):
        registry.get("x")


def _method(name):
    imp = registry.get("imp")
    return dataclasses.replace(imp, name=name)


def test_a_method_without_a_config_section_cannot_register():
    with pytest.raises(ValueError, match="Method 'snip' has no config section"):
        registry.register(_method("snip"))
    assert registry.names() == ["cs", "imp"]


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="Method 'imp' is already registered"):
        registry.register(_method("imp"))
    assert registry.get("imp").driver is IterativeMagnitudePruning


@pytest.mark.parametrize("method", ["imp", "cs"])
def test_drivers_build_from_a_config_through_the_registry(method):
    config = load_config(
        None,
        [
            f"method={method}",
            "pruning.rounds=2",
            "pruning.layers=[fc1]",
            "cs.rounds=2",
            "seed=4",
        ],
    )
    driver = registry.get(config.method).driver.from_config(config, mlp(), verbose=0)
    assert type(driver) is registry.get(method).driver
    assert driver.seed == 4 and driver.baselines == tuple(config.baselines)
    assert driver.rounds == config.method_config.rounds == 2
