import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()
SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="needs the TensorFlow backend"
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    # Without the full garbage collection of free_memory=True: it took up to 3 s
    # per test once the suite's heap was large (most of `make test`'s time);
    # Python's own collector still runs as usual.
    keras.backend.clear_session(free_memory=False)


def shared_data_path(name: str) -> str:
    path = os.path.join(SHARED_DATA, name)
    if not os.path.exists(path):
        pytest.skip(f"real data {name} not found in ../shared/data")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def write_tiny_dataset(folder) -> str:
    """120 synthetic 6x6 grayscale images in two classes as ``tiny.npz``."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (120, 6, 6), dtype=np.uint8)
    y = (x.reshape(120, -1).mean(axis=1) > 127).astype(np.int64)
    path = folder / "tiny.npz"
    np.savez(path, x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    return path


def write_tiny_config(folder, baselines="[random_reinit]") -> str:
    """A tiny IMP config (6x6 synthetic images, LeNet [8, 4], 2 rounds) in
    ``folder``; returns the YAML path."""
    path = folder / "tiny.yaml"
    path.write_text(f"""
data: {{name: tiny, path: {write_tiny_dataset(folder)}, validation_size: 10}}
model: {{name: lenet_300_100, options: {{hidden: [8, 4]}}}}
training: {{batch_size: 16, duration: 2ep, learning_rate: 0.01}}
pruning: {{fraction: 0.5, rounds: 2, layer_fractions: {{output: 0.25}}}}
baselines: {baselines}
""")
    return path


@pytest.fixture
def tiny_config(tmp_path):
    return write_tiny_config(tmp_path)


@pytest.fixture
def cs_mlp_config(tmp_path):
    """A tiny Continuous Sparsification config (LeNet [16, 8], one round)."""
    path = tmp_path / "cs_mlp.yaml"
    path.write_text(f"""
method: cs
data: {{name: tiny, path: {write_tiny_dataset(tmp_path)}, validation_size: 10}}
model: {{name: lenet_300_100, options: {{hidden: [16, 8]}}}}
training: {{optimizer: sgd, learning_rate: 0.05, batch_size: 16, duration: 2ep}}
cs: {{rounds: 1, rewind: 1ep, layers: all}}
baselines: []
""")
    return path
