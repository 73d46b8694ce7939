"""tfmot's ``prune_low_magnitude`` vs. plain tf_keras: LeNet-300-100 step time.

The reference point for ``masked_overhead.py``: the same network (784-300-100-10,
ReLU, softmax head, Glorot-normal init), batch 60, Adam(1.2e-3), sparse
cross-entropy, synthetic MNIST-shaped data, trained with ``model.fit`` in
tf_keras (Keras 2), which is what tensorflow-model-optimization 0.8 requires.
Variants, timed interleaved in one process (see ``_harness.py``):

- ``plain``: tf_keras Dense layers;
- ``plain_repeat``: a second, identical plain model (shows the noise floor);
- ``tfmot``: ``prune_low_magnitude`` over the whole model with
  ``ConstantSparsity(0.5, begin_step=0, frequency=100)`` and the required
  ``UpdatePruningStep`` callback (the mask reaches 50% at step 0 and is
  recomputed every 100 steps, as in tfmot's defaults).

It needs its own environment (``make bench-tfmot`` creates ``.venv-tfmot`` with
the pinned versions in ``benchmarks/requirements-tfmot.txt`` and runs this)::

    TF_USE_LEGACY_KERAS=1 .venv-tfmot/bin/python benchmarks/tfmot_overhead.py \\
        --repeats 15 --json benchmarks/results/tfmot_overhead.json

With ``--compare benchmarks/results/masked_overhead.json`` it prints
keras_lottery's LeNet ratio (measured by ``masked_overhead.py`` in the main
environment) beside tfmot's.

With ``--gradual`` it is instead tfmot's half of ``gradual_overhead.py``: the
same ``PolynomialDecay(0, 0.8, 0, end, frequency=100)`` on LeNet-300-100 and a
small CNN (``plain``, ``plain_repeat``, ``tfmot``), recording tfmot's per-layer
kept counts at every prune step; ``--compare`` then takes
``gradual_overhead.py``'s JSON and prints both ratios and whether the two
density trajectories are equal::

    TF_USE_LEGACY_KERAS=1 .venv-tfmot/bin/python benchmarks/tfmot_overhead.py \
        --gradual --repeats 10 --json benchmarks/results/tfmot_gradual.json \
        --compare benchmarks/results/gradual_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness  # noqa: E402
import numpy as np  # noqa: E402

try:
    import tensorflow as tf  # noqa: E402
    import tensorflow_model_optimization as tfmot  # noqa: E402
    import tf_keras  # noqa: E402
except ImportError as error:  # pragma: no cover - environment problem
    raise SystemExit(
        f"{error}. This benchmark runs in its own environment: `make bench-tfmot` "
        "creates .venv-tfmot (tensorflow-cpu, tf_keras, "
        "tensorflow-model-optimization) and runs it."
    ) from error

BATCH = 60


def lenet(seed: int):
    """LeNet-300-100 in tf_keras, like keras_lottery's ``lenet_300_100``."""
    tf_keras.utils.set_random_seed(seed)
    init = "glorot_normal"
    return tf_keras.Sequential(
        [
            tf_keras.Input((28, 28, 1)),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(300, activation="relu", kernel_initializer=init),
            tf_keras.layers.Dense(100, activation="relu", kernel_initializer=init),
            tf_keras.layers.Dense(10, activation="softmax", kernel_initializer=init),
        ]
    )


def pruned_lenet(seed: int, sparsity: float):
    schedule = tfmot.sparsity.keras.ConstantSparsity(
        sparsity, begin_step=0, frequency=100
    )
    return tfmot.sparsity.keras.prune_low_magnitude(
        lenet(seed), pruning_schedule=schedule
    )


def dataset(steps: int, seed: int):
    """A batched, cached tf.data pipeline of synthetic MNIST-shaped data."""
    rng = np.random.default_rng(seed)
    n = BATCH * steps
    x = rng.normal(size=(n, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).cache()


def run(args) -> dict:
    data = dataset(args.steps, args.seed)
    models = {
        "plain": (lenet(args.seed), []),
        "plain_repeat": (lenet(args.seed), []),
        "tfmot": (
            pruned_lenet(args.seed, args.sparsity),
            [tfmot.sparsity.keras.UpdatePruningStep()],
        ),
    }
    for model, callbacks in models.values():
        model.compile(
            tf_keras.optimizers.Adam(1.2e-3), "sparse_categorical_crossentropy"
        )
        model.fit(data, epochs=1, verbose=0, callbacks=callbacks)  # trace, warm up

    def epoch(model, callbacks):
        def go():
            model.fit(data, epochs=1, verbose=0, callbacks=callbacks)
            return args.steps

        return go

    load_before = _harness.load_average()
    times = _harness.interleaved(
        {name: epoch(*pair) for name, pair in models.items()},
        args.repeats,
        seed=args.seed,
    )
    load_after = _harness.load_average()
    summary = _harness.summarize(times, baseline="plain")
    return {
        "benchmark": "tfmot_overhead",
        "info": _harness.machine_info(
            tensorflow=tf.__version__,
            tf_keras=tf_keras.__version__,
            tensorflow_model_optimization=tfmot.__version__,
        ),
        "settings": {
            "model": "LeNet-300-100 (784-300-100-10), tf_keras",
            "threads": args.threads or "default",
            "batch": BATCH,
            "steps_per_repeat": args.steps,
            "repeats": args.repeats,
            "optimizer": "Adam(1.2e-3)",
            "sparsity": args.sparsity,
            "schedule": "ConstantSparsity(begin_step=0, frequency=100)",
            "seed": args.seed,
        },
        "load_average": {"before": load_before, "after": load_after},
        "ms_per_step": summary,
        "ratio": summary["tfmot"]["wall"]["ratio_paired_median"],
        "ratio_cpu": summary["tfmot"]["cpu"]["ratio_paired_median"],
        "noise_ratio": summary["plain_repeat"]["wall"]["ratio_paired_median"],
        "noise_ratio_cpu": summary["plain_repeat"]["cpu"]["ratio_paired_median"],
        "sparsity_reached": measured_sparsity(models["tfmot"][0]),
    }


def measured_sparsity(model) -> float:
    """Fraction of zeros in the pruned kernels after training (sanity check)."""
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    kernels = [layer.kernel.numpy() for layer in stripped.layers if layer.weights]
    zeros = sum(int((k == 0).sum()) for k in kernels)
    return round(zeros / sum(k.size for k in kernels), 4)


def print_table(result: dict, compare: str | None) -> None:
    s = result["ms_per_step"]
    print(f"{'variant':<14}{'ms/step':>10}{'ratio':>9}{'cpu ms':>9}{'cpu ratio':>11}")
    for name, entry in s.items():
        wall, cpu = entry["wall"], entry["cpu"]
        print(
            f"{name:<14}{wall['median']:>10.3f}{wall['ratio_paired_median']:>9.3f}"
            f"{cpu['median']:>9.3f}{cpu['ratio_paired_median']:>11.3f}"
        )
    print(
        f"tfmot/plain = {result['ratio']:.3f} wall, {result['ratio_cpu']:.3f} CPU "
        f"(plain_repeat/plain = {result['noise_ratio']:.3f} wall, "
        f"{result['noise_ratio_cpu']:.3f} CPU); kernel sparsity after training "
        f"{result['sparsity_reached']:.3f}; load {result['load_average']}"
    )
    if compare and os.path.exists(compare):
        with open(compare) as handle:
            ours = json.load(handle)
        for row in ours.get("models", []):
            if row.get("model") == "lenet_300_100":
                print(
                    f"keras_lottery masked/plain (LeNet-300-100, from {compare}, "
                    f"{ours['info']['date']}) = {row['ratio']:.3f} wall, "
                    f"{row['ratio_cpu']:.3f} CPU (tfmot/plain here: "
                    f"{result['ratio']:.3f} wall, {result['ratio_cpu']:.3f} CPU)"
                )


def small_cnn(seed: int):
    """The small CNN of ``gradual_overhead.py`` in tf_keras."""
    tf_keras.utils.set_random_seed(seed)
    layers = tf_keras.layers
    return tf_keras.Sequential(
        [
            tf_keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )


GRADUAL_NETWORKS = {"lenet_300_100": lenet, "small_cnn": small_cnn}


class KeptCounts(tf_keras.callbacks.Callback):
    """tfmot computes the masks for step ``s`` in the forward pass of the batch
    whose ``pruning_step`` is ``s``: after it, the kept counts of each layer."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule, self.counts = schedule, {}

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy()) - 1
        if bool(self.schedule(step)[0]):
            self.counts[step] = [
                int(mask.numpy().sum())
                for layer in self.model.layers
                if hasattr(layer, "pruning_vars")
                for _, mask, _ in layer.pruning_vars
            ]


def run_gradual_network(name: str, args) -> dict:
    build = GRADUAL_NETWORKS[name]
    data = dataset(args.steps, args.seed)
    total = args.steps * (args.repeats + 1)
    end = max(100, total - total % 100)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, args.sparsity, 0, end, frequency=100
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        build(args.seed), pruning_schedule=schedule
    )
    kept = KeptCounts(schedule)
    variants = {
        "plain": (build(args.seed), []),
        "plain_repeat": (build(args.seed), []),
        "tfmot": (pruned, [tfmot.sparsity.keras.UpdatePruningStep(), kept]),
    }
    for model, callbacks in variants.values():
        model.compile(
            tf_keras.optimizers.Adam(1.2e-3), "sparse_categorical_crossentropy"
        )
        model.fit(data, epochs=1, verbose=0, callbacks=callbacks)  # trace, warm up

    def epoch(model, callbacks):
        def go():
            model.fit(data, epochs=1, verbose=0, callbacks=callbacks)
            return args.steps

        return go

    times = _harness.interleaved(
        {n: epoch(*pair) for n, pair in variants.items()}, args.repeats, args.seed
    )
    summary = _harness.summarize(times, baseline="plain")
    return {
        "model": name,
        "ms_per_step": summary,
        "ratio_tfmot": summary["tfmot"]["wall"]["ratio_paired_median"],
        "noise_ratio": summary["plain_repeat"]["wall"]["ratio_paired_median"],
        "kept_per_prune_step": {str(s): kept.counts[s] for s in sorted(kept.counts)},
    }


def run_gradual(args) -> dict:
    load_before = _harness.load_average()
    rows = [run_gradual_network(name, args) for name in GRADUAL_NETWORKS]
    return {
        "benchmark": "tfmot_gradual",
        "info": _harness.machine_info(
            tensorflow=tf.__version__,
            tf_keras=tf_keras.__version__,
            tensorflow_model_optimization=tfmot.__version__,
        ),
        "settings": {
            "batch": BATCH,
            "steps_per_repeat": args.steps,
            "repeats": args.repeats,
            "optimizer": "Adam(1.2e-3)",
            "schedule": f"PolynomialDecay(0, {args.sparsity}, 0, end, frequency=100)",
            "seed": args.seed,
        },
        "load_average": {"before": load_before, "after": _harness.load_average()},
        "models": rows,
    }


def print_gradual(result: dict, compare: str | None) -> None:
    ours = {}
    if compare and os.path.exists(compare):
        with open(compare) as handle:
            ours = {row["model"]: row for row in json.load(handle)["models"]}
    for row in result["models"]:
        line = (
            f"{row['model']:<14} tfmot/plain {row['ratio_tfmot']:.3f} "
            f"(plain_repeat/plain {row['noise_ratio']:.3f})"
        )
        mine = ours.get(row["model"])
        if mine:
            # Steps both recorded: ours has no step-0 event when nothing changes,
            # and prunes at the last step S after the last update, which tfmot
            # would do only in a further forward pass.
            common = set(row["kept_per_prune_step"]) & set(mine["kept_per_prune_step"])
            theirs = {s: row["kept_per_prune_step"][s] for s in common}
            equal = theirs == {s: mine["kept_per_prune_step"][s] for s in common}
            line += (
                f"; keras_lottery gradual/plain {mine['ratio_gradual']:.3f} "
                f"(from {compare}); kept counts equal at "
                f"{len(common)} common prune steps: {equal}"
            )
        print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100, help="steps per timing")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="TF intra/inter-op threads")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--compare", help="our JSON (masked/gradual_overhead.py)")
    parser.add_argument(
        "--gradual", action="store_true", help="PolynomialDecay vs GradualPruning"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be >= 1")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    info = _harness.machine_info(tensorflow=tf.__version__)
    _harness.header("tfmot_overhead", info)
    if args.gradual:
        args.sparsity = 0.8 if args.sparsity == 0.5 else args.sparsity
        result = run_gradual(args)
        print_gradual(result, args.compare)
    else:
        result = run(args)
        print_table(result, args.compare)
    _harness.write_json(args.json, result)


if __name__ == "__main__":
    main()
