"""Fixtures of the run-folder tests: one finished tiny IMP run, made once per
session and copied for each user (the copies can be changed freely)."""

import shutil

import pytest

from keras_lottery import cli
from tests.conftest import write_tiny_config


@pytest.fixture(scope="session")
def _pristine_imp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine_imp")
    config = write_tiny_config(root)
    out = root / "runs"
    args = ["run", str(config), "--out", str(out)]
    args += ["--set", "pruning.rewind=3it", "--set", "pruning.rounds=1"]
    assert cli.main(args) == 0
    (directory,) = list(out.iterdir())
    return directory


def copy_run(source, parent):
    """``source`` copied into ``parent`` under its own name."""
    target = parent / source.name
    shutil.copytree(source, target)
    return target


@pytest.fixture
def imp_run(_pristine_imp_run, tmp_path):
    """A finished tiny IMP run folder of its own (``keras-lottery run`` of
    :func:`tests.conftest.write_tiny_config` with 1 round, rewind 3it, the
    random_reinit control)."""
    return copy_run(_pristine_imp_run, tmp_path)


@pytest.fixture(scope="module")
def module_imp_run(_pristine_imp_run, tmp_path_factory):
    """As :func:`imp_run`, one copy shared by the tests of a module."""
    return copy_run(_pristine_imp_run, tmp_path_factory.mktemp("imp_run"))


@pytest.fixture(scope="session")
def swish_run(tmp_path_factory):
    """``swish_run(method)``: a finished tiny run folder (``imp``: 1 round;
    ``cs``: 1 search round) whose ticket trained with ``retrain.tweaks:
    [swish]``, made once per session; do not change it."""
    made = {}

    def make(method):
        if method not in made:
            root = tmp_path_factory.mktemp(f"swish_{method}")
            args = ["run", str(write_tiny_config(root, "[]")), "--out", str(root)]
            args += ["--set", "pruning.rounds=1", "--set", "retrain.tweaks=[swish]"]
            if method == "cs":
                args += ["--set", "method=cs", "--set", "cs.rounds=1"]
                args += ["--set", "cs.layers=all", "--set", "cs.rewind=1ep"]
            assert cli.main(args) == 0
            (made[method],) = root.glob(f"{method}_*")
        return made[method]

    return make
