"""GradualPruning's step-time overhead and density trajectory (keras_lottery side).

The keras_lottery half of the tfmot comparison (``tfmot_overhead.py --gradual``
is tfmot's half, in its own environment). Same networks, data, batch (60),
optimizer (Adam 1.2e-3) and schedule as there: ``PolynomialDecay(0, 0.8,
begin_step=0, end_step=S, frequency=100)`` over the ``S`` steps of the timed run.
Variants per network, timed interleaved in one process (``_harness.py``):

- ``plain``: plain Keras layers (the baseline of every ratio);
- ``plain_repeat``: a second identical plain model (the noise floor);
- ``masked``: keras_lottery's masked layers, no pruning;
- ``gradual``: masked layers plus the ``GradualPruning`` callback following the
  schedule (a mask update, with its sort, every 100 steps).

Networks: LeNet-300-100 (784-300-100-10) and a small CNN (conv 16 3x3, pool,
conv 32 3x3, pool, dense 10) on synthetic 28x28x1 data. The JSON also holds the
per-layer kept counts at every prune step of the ``gradual`` runs (the density
trajectory that tfmot's must equal)::

    TF_NUM_INTRAOP_THREADS=1 .venv/bin/python benchmarks/gradual_overhead.py \\
        --repeats 10 --json benchmarks/results/gradual_overhead.json
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lottery as kl  # noqa: E402
from keras_lottery.gradual import GradualPruning  # noqa: E402
from keras_lottery.pruning_schedules import PolynomialDecay  # noqa: E402

BATCH = 60
FREQUENCY = 100


def lenet(seed: int):
    keras.utils.set_random_seed(seed)
    init = "glorot_normal"
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu", kernel_initializer=init),
            keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=init),
        ]
    )


def small_cnn(seed: int):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


NETWORKS = {"lenet_300_100": lenet, "small_cnn": small_cnn}


def data(steps: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH * steps, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, BATCH * steps).astype("int32")
    return x, y


def schedule(total_steps: int, sparsity: float) -> PolynomialDecay:
    end = max(FREQUENCY, total_steps - total_steps % FREQUENCY)
    return PolynomialDecay(0.0, sparsity, 0, end, frequency=FREQUENCY)


def run_network(name: str, args) -> dict:
    build = NETWORKS[name]
    x, y = data(args.steps, args.seed)
    total = args.steps * (args.repeats + 1)  # + the warm-up epoch
    pruning = GradualPruning(schedule(total, args.sparsity), scope="layerwise")
    variants = {
        "plain": (build(args.seed), []),
        "plain_repeat": (build(args.seed), []),
        "masked": (kl.prunable(build(args.seed)), []),
        "gradual": (kl.prunable(build(args.seed)), [pruning]),
    }
    for model, _ in variants.values():
        model.compile(keras.optimizers.Adam(1.2e-3), "sparse_categorical_crossentropy")
    events = []

    def epoch(model, callbacks):
        def go():
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
            events.extend(e for e in pruning.events if callbacks)
            return args.steps

        return go

    for model, callbacks in variants.values():
        epoch(model, callbacks)()  # trace, warm up
    times = _harness.interleaved(
        {n: epoch(*pair) for n, pair in variants.items()}, args.repeats, args.seed
    )
    summary = _harness.summarize(times, baseline="plain")
    sizes = {
        layer.name: int(layer.get_mask().size)
        for layer in kl.pruning.masked_layers(variants["gradual"][0])
    }
    trajectory = {}
    for event in events:
        trajectory[event["step"]] = {
            n: round(d * sizes[n]) for n, d in event["layers"].items()
        }
    return {
        "model": name,
        "layer_sizes": list(sizes.values()),
        "ms_per_step": summary,
        "ratio_gradual": summary["gradual"]["wall"]["ratio_paired_median"],
        "ratio_masked": summary["masked"]["wall"]["ratio_paired_median"],
        "noise_ratio": summary["plain_repeat"]["wall"]["ratio_paired_median"],
        "kept_per_prune_step": {
            str(s): list(trajectory[s].values()) for s in sorted(trajectory)
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100, help="steps per timing")
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be >= 1")
    info = _harness.machine_info(keras=keras.__version__)
    _harness.header("gradual_overhead", info)
    load_before = _harness.load_average()
    rows = [run_network(name, args) for name in args.networks]
    result = {
        "benchmark": "gradual_overhead",
        "info": info,
        "settings": {
            "batch": BATCH,
            "steps_per_repeat": args.steps,
            "repeats": args.repeats,
            "optimizer": "Adam(1.2e-3)",
            "schedule": f"PolynomialDecay(0, {args.sparsity}, 0, end, frequency=100)",
            "scope": "layerwise (as tfmot)",
            "seed": args.seed,
        },
        "load_average": {"before": load_before, "after": _harness.load_average()},
        "models": rows,
    }
    for row in rows:
        print(
            f"{row['model']:<14} gradual/plain {row['ratio_gradual']:.3f}  "
            f"masked/plain {row['ratio_masked']:.3f}  "
            f"plain_repeat/plain {row['noise_ratio']:.3f}  "
            f"gradual {row['ms_per_step']['gradual']['wall']['median']:.3f} ms/step"
        )
    _harness.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
