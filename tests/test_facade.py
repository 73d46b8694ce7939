"""The top-level facade: ``import keras_lottery as kl`` gives the public API."""

import importlib
import types

import pytest

import keras_lottery as kl

SUBMODULES = (
    "analysis",
    "callbacks",
    "controls",
    "elastic",
    "export",
    "gradual",
    "layers",
    "models",
    "pruning",
    "pruning_schedules",
    "schedules",
)


@pytest.mark.backend_neutral
def test_every_exported_name_is_importable():
    namespace = {}
    exec(f"from keras_lottery import {', '.join(kl.__all__)}", namespace)
    for name in kl.__all__:
        assert namespace[name] is getattr(kl, name)
    assert len(set(kl.__all__)) == len(kl.__all__)


@pytest.mark.backend_neutral
def test_the_facade_names_the_documented_api():
    expected = {
        "prunable",
        "soften",
        "harden",
        "strip_masks",
        "export_saved_model",
        "Ticket",
        "IterativeMagnitudePruning",
        "ContinuousSparsification",
        "IMPResult",
        "CSResult",
        "instability",
        "interpolation_curve",
        "RunConfig",
        "load_config",
        "Recipe",
        "CoupledSGD",
        "CoupledAdam",
        "GradualPruning",
        "__version__",
        *SUBMODULES,
    }
    assert set(kl.__all__) == expected


@pytest.mark.backend_neutral
@pytest.mark.parametrize("name", SUBMODULES)
def test_submodules_are_the_package_modules(name):
    module = getattr(kl, name)
    assert isinstance(module, types.ModuleType)
    assert module is importlib.import_module(f"keras_lottery.{name}")


@pytest.mark.backend_neutral
def test_facade_names_are_the_defining_modules_objects():
    from keras_lottery.config import RunConfig, load_config
    from keras_lottery.conversion import harden, prunable, soften
    from keras_lottery.methods.cs import ContinuousSparsification
    from keras_lottery.methods.imp import IterativeMagnitudePruning

    assert kl.prunable is prunable and kl.soften is soften and kl.harden is harden
    assert kl.IterativeMagnitudePruning is IterativeMagnitudePruning
    assert kl.ContinuousSparsification is ContinuousSparsification
    assert kl.RunConfig is RunConfig and kl.load_config is load_config


def test_runs_are_not_part_of_the_library_import():
    # Only runs/ and cli.py import keras_lottery.runs; the library does not.
    import subprocess
    import sys

    code = (
        "import sys, keras_lottery; "
        "print(sorted(m for m in sys.modules if m.startswith('keras_lottery.runs')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        kl.nope  # noqa: B018
