"""keras_lottery: lottery-ticket toolkit for Keras 3.

Find sparse "winning tickets" (iterative magnitude pruning with rewinding),
analyze them and ship them, without leaving ordinary Keras.

>>> import keras_lottery as kl
>>> model = kl.prunable(model)                       # masked twins, same outputs
>>> kl.pruning.prune_magnitude(model, 0.2)           # drop 20% of remaining weights
>>> print(kl.pruning.sparsity_report(model))
>>> kl.export.export_saved_model(model, "ticket/")   # plain SavedModel
"""

from keras_lottery import export, layers, pruning
from keras_lottery.conversion import prunable

__version__ = "0.1.0"

__all__ = ["export", "layers", "prunable", "pruning", "__version__"]
