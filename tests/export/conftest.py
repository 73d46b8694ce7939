import numpy as np
import pytest

from keras_lottery import pruning
from tests.helpers import mlp, small_convnet


@pytest.fixture
def pruned_convnet():
    """:func:`tests.helpers.small_convnet`, built, with 70% of each layer pruned."""
    model = small_convnet()
    model.predict(np.zeros((1, 8, 8, 3)), verbose=0)
    pruning.prune_magnitude(model, 0.7)
    return model


@pytest.fixture
def pruned_mlp():
    """A 64-64-64-10 masked MLP with 90% of each layer pruned: kernels large
    enough (>= 1024 weights) for the LiteRT converter to quantize them."""
    model = mlp(inputs=64, hidden=64, outputs=10)
    pruning.prune_magnitude(model, 0.9)
    return model


@pytest.fixture
def unit_inputs(rng):
    """A batch of 5 inputs in [0, 1) for :func:`pruned_mlp`."""
    return rng.random((5, 64)).astype("float32")
