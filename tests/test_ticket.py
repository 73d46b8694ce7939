import keras
import numpy as np
import pytest

from keras_lottery import models, pruning
from keras_lottery.errors import CorruptFileError
from keras_lottery.layers import MaskedDense
from keras_lottery.rewind import capture_state
from keras_lottery.ticket import Ticket
from tests.helpers import mlp, small_convnet

pytestmark = pytest.mark.backend_neutral


def _pruned(builder=small_convnet):
    model = builder()
    pruning.prune_magnitude(model, 0.6)
    return model


@pytest.mark.backend_core
def test_save_load_apply_round_trip(tmp_path):
    model = _pruned()
    state = capture_state(model)
    ticket = Ticket.from_model(
        model,
        weights=state,
        method="imp",
        round=3,
        rewind="5it",
        metrics={"test": {"accuracy": 0.9}},
    )
    path = tmp_path / "t.ticket.npz"
    ticket.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["t.ticket.npz"]  # no temp files
    loaded = Ticket.load(path)
    assert loaded.metadata["round"] == 3 and loaded.metadata["rewind"] == "5it"
    assert loaded.sparsity == pytest.approx(ticket.sparsity)
    fresh = small_convnet()  # new automatic names would not matter
    loaded.apply(fresh)
    for a, b in zip(model.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )


@pytest.mark.backend_core
def test_build_model_from_recorded_config(tmp_path):
    model = _pruned(mlp)
    Ticket.from_model(model).save(tmp_path / "t.npz")
    rebuilt = Ticket.load(tmp_path / "t.npz").build_model()
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    np.testing.assert_allclose(
        rebuilt.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.backend_core
def test_apply_onto_registry_model(tmp_path):
    keras.utils.set_random_seed(1)
    model = models.get("lenet_300_100", input_shape=(8, 8, 1), hidden=[12, 6])
    pruning.prune_magnitude(model, 0.5)
    Ticket.from_model(model).save(tmp_path / "t.npz")
    fresh = models.get("lenet_300_100", input_shape=(8, 8, 1), hidden=[12, 6])
    Ticket.load(tmp_path / "t.npz").apply(fresh)
    assert pruning.get_masks(fresh).keys() == pruning.get_masks(model).keys()
    for name, mask in pruning.get_masks(model).items():
        np.testing.assert_array_equal(pruning.get_masks(fresh)[name], mask)


@pytest.mark.backend_core
def test_mismatched_architecture_names_the_first_mismatch():
    ticket = Ticket.from_model(_pruned(mlp))
    other = mlp(hidden=17)
    before = [keras.ops.convert_to_numpy(v).copy() for v in other.weights]
    with pytest.raises(
        ValueError, match=r"Masked layer 0 .*'fc1'.*\(8, 16\).*\(8, 17\)"
    ):
        ticket.apply(other)
    for a, b in zip(before, other.weights, strict=True):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    shorter = keras.Sequential([keras.Input((8,)), MaskedDense(16, name="fc1")])
    with pytest.raises(ValueError, match="3 masked layers but the model has 1"):
        ticket.apply(shorter)
    no_bias = keras.Sequential(
        [
            keras.Input((8,)),
            MaskedDense(16, use_bias=False),
            MaskedDense(16),
            MaskedDense(3),
        ]
    )
    with pytest.raises(ValueError, match="variables"):
        ticket.apply(no_bias)


@pytest.mark.backend_core
def test_unknown_format_version_is_rejected(tmp_path):
    import json

    path = tmp_path / "t.npz"
    Ticket.from_model(_pruned(mlp)).save(path)
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(bytes(arrays["metadata"]).decode())
    header["format_version"] = 99
    arrays["metadata"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CorruptFileError, match="format version 99"):
        Ticket.load(path)


def test_build_model_in_a_fresh_process(tmp_path):
    # Issue 20: a ticket whose model was compiled with CoupledAdam failed in a
    # fresh process ("Could not locate class 'CoupledAdam'"). The import is lazy
    # (no Keras until a name is used; tests/test_cli.py checks the same for
    # --help) and build_model registers the library's Keras classes.
    import subprocess
    import sys

    from keras_lottery.config import TrainingConfig
    from keras_lottery.recipes import build_optimizer

    model = models.get("lenet_300_100", input_shape=(4, 4, 1), hidden=[4])
    model.compile(build_optimizer(TrainingConfig(), 10), "mse")
    Ticket.from_model(model).save(tmp_path / "t.npz")
    code = (
        "import sys, keras_lottery as kl\n"
        "print('keras' in sys.modules)\n"
        f"model = kl.Ticket.load({str(tmp_path / 't.npz')!r}).build_model()\n"
        "print(type(model.optimizer).__name__, type(model.layers[-1]).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-2:] == ["False", "CoupledAdam MaskedDense"]
