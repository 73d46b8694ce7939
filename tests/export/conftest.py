import numpy as np
import pytest

from keras_lottery import pruning
from tests.helpers import small_convnet


@pytest.fixture
def pruned_convnet():
    """:func:`tests.helpers.small_convnet`, built, with 70% of each layer pruned."""
    model = small_convnet()
    model.predict(np.zeros((1, 8, 8, 3)), verbose=0)
    pruning.prune_magnitude(model, 0.7)
    return model
