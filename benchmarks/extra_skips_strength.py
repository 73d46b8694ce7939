"""How strongly the extra skip paths (keras_lottery.tweaks.skips) change a
network's output at the start of retraining, in inference and training mode,
with the BNs' gamma at 1 (ToST's init) and at 0 (``retrain.skip_bn_gamma``).

The relative L2 change of the logits of one batch, ``||f_skip(x) - f(x)|| /
||f(x)||``, for a fresh ResNet-20 (or any zoo ResNet with basic blocks) and a
batch of CIFAR-10 images (``--data``) or Gaussian noise. docs/tweaks.md quotes
its output.

    python benchmarks/extra_skips_strength.py --data ../shared/data/cifar10_subset.npz
"""

from __future__ import annotations

import argparse
import json

import keras
import numpy as np

from keras_lottery import models
from keras_lottery.tweaks.skips import add_extra_skips


def batch(data: str | None, size: int, seed: int) -> np.ndarray:
    """``size`` images: the first of the CIFAR ``.npz`` scaled to [0, 1] and
    standardized per channel, or Gaussian noise."""
    if data is None:
        rng = np.random.default_rng(seed)
        return rng.normal(size=(size, 32, 32, 3)).astype("float32")
    with np.load(data) as arrays:
        x = arrays["x_train"][:size].astype("float32") / 255.0
    return (x - x.mean(axis=(0, 1, 2))) / x.std(axis=(0, 1, 2))


def relative_change(model, skip, x, training: bool) -> float:
    base = keras.ops.convert_to_numpy(model(x, training=training))
    new = keras.ops.convert_to_numpy(skip(x, training=training))
    return float(np.linalg.norm(new - base) / np.linalg.norm(base))


def measure(
    model_name="cifar_resnet_20", data=None, size=128, seed=0, **options
) -> dict:
    """``{"bn_gamma=1": {"inference": c, "training": c}, "bn_gamma=0": ...}``;
    ``options`` go to :func:`keras_lottery.models.get`."""
    keras.utils.set_random_seed(seed)
    model = models.get(model_name, classifier_activation=None, **options)
    x = batch(data, size, seed)
    out = {}
    for gamma in (1.0, 0.0):
        skip = add_extra_skips(model, bn_gamma=gamma)
        out[f"bn_gamma={gamma:g}"] = {
            mode: relative_change(model, skip, x, mode == "training")
            for mode in ("inference", "training")
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cifar_resnet_20")
    parser.add_argument("--data", help="a CIFAR-10 .npz (default: Gaussian noise)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = measure(args.model, args.data, args.batch, args.seed)
    for name, modes in result.items():
        print(
            f"{name}: logits change {modes['inference']:.2%} in inference mode, "
            f"{modes['training']:.2%} in training mode"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
