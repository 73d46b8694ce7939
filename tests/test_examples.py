"""The scripts in examples/ run end to end on tiny settings (TensorFlow backend:
one of them exports a SavedModel)."""

import importlib.util
import os

import numpy as np
import pytest

from tests.conftest import tensorflow_only

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@tensorflow_only
def test_find_ticket_imp(tmp_path):
    out = tmp_path / "out"
    result = load_example("find_ticket_imp.py").main(
        ["--rounds", "1", "--epochs", "2", "--rewind", "5it", "--out", str(out)]
    )
    assert [r.round for r in result.rounds] == [0, 1]
    assert (out / "lenet.ticket.npz").exists()
    assert (out / "lenet_saved_model" / "saved_model.pb").exists()


def test_continuous_sparsification(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 60)
    np.savez(
        tmp_path / "d.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:]
    )
    result = load_example("continuous_sparsification.py").main(
        [
            "--data",
            str(tmp_path / "d.npz"),
            "--depth",
            "8",
            "--width",
            "4",
            "--epochs",
            "2",
            "--rounds",
            "1",
            "--validation-size",
            "8",
        ]
    )
    assert result.epochs == {"search": 2, "ticket": 2, "total": 4}


@pytest.mark.parametrize("name", sorted(os.listdir(EXAMPLES)))
def test_every_example_is_tested(name):
    if name.endswith(".py"):
        with open(__file__) as handle:
            tested = handle.read()
        with open(os.path.join(os.path.dirname(__file__), "test_tuning.py")) as handle:
            tested += handle.read()
        assert f'"{name}"' in tested
