"""Training step time of masked vs. plain Keras layers, measured side by side.

For LeNet-300-100 (batch 60) and ResNet-20 (batch 128, 32x32x3) it times
``model.fit`` epochs of a fixed number of steps for three variants built from the
same network: plain Keras layers (the masked model with masks stripped), masked
layers with the default bool mask, and masked layers with a float32 mask. Variants
run in a shuffled order within each repeat (after a garbage collection) and the
per-step medians are compared, so machine noise hits all of them alike. It also
prints mask bytes / kernel bytes.

    python benchmarks/masked_overhead.py [--repeats 7] [--models lenet resnet20]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lottery import layers, models, pruning  # noqa: E402
from keras_lottery.export import strip_masks  # noqa: E402

SETUPS = {
    "lenet": dict(
        name="lenet_300_100",
        shape=(28, 28, 1),
        batch=60,
        steps=100,
        optimizer=lambda: keras.optimizers.Adam(1.2e-3),
    ),
    "resnet20": dict(
        name="cifar_resnet_20",
        shape=(32, 32, 3),
        batch=128,
        steps=6,
        optimizer=lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    ),
}


def float_mask_twin(layer_cls):
    class FloatMask(layer_cls):
        mask_dtype = "float32"

    FloatMask.__name__ = "Float" + layer_cls.__name__
    return FloatMask


FLOAT_TWINS = {cls: float_mask_twin(cls) for cls in layers.PLAIN_TWINS}


def variants(setup):
    keras.utils.set_random_seed(0)
    masked = models.get(setup["name"], num_classes=10, input_shape=setup["shape"])
    pruning.prune_magnitude(masked, 0.5)  # a realistic, non-trivial mask
    plain = strip_masks(masked)

    def to_float(layer):
        cls = FLOAT_TWINS.get(type(layer), type(layer))
        return cls.from_config(layer.get_config())

    float_masked = keras.models.clone_model(masked, clone_function=to_float)
    return {"plain": plain, "masked_bool": masked, "masked_float32": float_masked}


def mask_memory_ratio(model) -> float:
    mask = kernel = 0
    for layer in pruning.masked_layers(model):
        mask += int(np.prod(layer.mask.shape)) * np.dtype(layer.mask.dtype).itemsize
        kernel += int(np.prod(layer.raw_kernel.shape)) * 4
    return mask / kernel


def time_setup(key, repeats):
    setup = SETUPS[key]
    rng = np.random.default_rng(0)
    n = setup["batch"] * setup["steps"]
    x = rng.normal(size=(n, *setup["shape"])).astype("float32")
    y = rng.integers(0, 10, n)
    built = variants(setup)
    for model in built.values():
        model.compile(setup["optimizer"](), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=setup["batch"], epochs=1, verbose=0)  # warm-up
    per_step = {name: [] for name in built}
    order = list(built)
    for _ in range(repeats):
        rng.shuffle(order)  # no variant always runs right after another
        for name in order:
            model = built[name]
            gc.collect()
            began = time.perf_counter()
            model.fit(
                x, y, batch_size=setup["batch"], epochs=1, verbose=0, shuffle=False
            )
            per_step[name].append((time.perf_counter() - began) / setup["steps"])
    medians = {name: statistics.median(v) for name, v in per_step.items()}
    return {
        "model": setup["name"],
        "batch": setup["batch"],
        "ms_per_step": {k: round(1000 * v, 3) for k, v in medians.items()},
        "ratio_masked_bool": medians["masked_bool"] / medians["plain"],
        "ratio_masked_float32": medians["masked_float32"] / medians["plain"],
        "mask_bytes_over_kernel_bytes": {
            "bool": mask_memory_ratio(built["masked_bool"]),
            "float32": mask_memory_ratio(built["masked_float32"]),
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--models", nargs="+", default=list(SETUPS), choices=list(SETUPS)
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = [time_setup(key, args.repeats) for key in args.models]
    print(
        f"backend={keras.backend.backend()} keras={keras.__version__} "
        f"cpu_count={os.cpu_count()} machine={platform.machine()} "
        f"repeats={args.repeats}"
    )
    print(
        f"{'model':<18}{'plain ms':>10}{'bool ms':>10}{'f32 ms':>10}"
        f"{'bool/plain':>12}{'f32/plain':>11}{'mask/kernel':>13}"
    )
    for r in results:
        ms = r["ms_per_step"]
        print(
            f"{r['model']:<18}{ms['plain']:>10.2f}{ms['masked_bool']:>10.2f}"
            f"{ms['masked_float32']:>10.2f}{r['ratio_masked_bool']:>12.3f}"
            f"{r['ratio_masked_float32']:>11.3f}"
            f"{r['mask_bytes_over_kernel_bytes']['bool']:>13.2f}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
