"""keras_lottery.analysis re-exports every public name of its modules."""

import importlib

import pytest

from keras_lottery import analysis

pytestmark = pytest.mark.backend_neutral

MODULES = ["copies", "instability", "interpolation", "results"]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_is_exported(name):
    module = importlib.import_module(f"keras_lottery.analysis.{name}")
    assert set(module.__all__) <= set(analysis.__all__)
    for public in module.__all__:
        assert getattr(analysis, public) is getattr(module, public)


def test_exports_exist_and_the_modules_keep_their_names():
    assert sorted(analysis.__all__) == analysis.__all__
    exported = set().union(
        *(
            importlib.import_module(f"keras_lottery.analysis.{m}").__all__
            for m in MODULES
        )
    )
    assert set(analysis.__all__) == exported
    from keras_lottery.analysis.instability import InstabilityResult

    assert InstabilityResult is analysis.InstabilityResult
    assert callable(analysis.instability)  # the function, not the module
