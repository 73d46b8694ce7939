"""Training step time of masked vs. plain Keras layers, measured side by side.

For LeNet-300-100 (batch 60, Adam) and ResNet-20 (batch 128, 32x32x3, SGD with
momentum) it builds the network once with masked layers (50% of the weights
pruned by magnitude) and derives every variant from it, with identical weights:

- ``plain``: the plain-Keras twin (``export.strip_masks``), the baseline;
- ``plain_repeat``: a second plain twin, timed like the others: its ratio to
  ``plain`` is the noise floor of this run;
- ``masked``: keras_lottery's masked layers as shipped, ``kernel * cast(mask)``
  in the forward pass (and the gradient times the mask backward);
- ``masked_where``: ``where(mask, kernel, 0)`` in the forward pass (and its
  select gradient backward), the formulation shipped before;
- ``masked_custom_gradient``: an alternative measured here, not shipped: the
  stored kernel in the forward pass (it holds zeros at pruned positions as long
  as nothing writes it behind the mask's back) and the gradient times the mask
  backward (``keras.ops.custom_gradient``);

Each repeat times one ``model.fit`` epoch of a fixed number of steps for every
variant, in a shuffled order, after a garbage collection (``_harness.py``). The
reported ratio is the median over repeats of ``variant / plain`` within a repeat;
wall-clock and process CPU time are both recorded. It also prints mask bytes /
kernel bytes.

``--ops`` adds a mechanism-level measurement (TensorFlow backend): the CPU time of
only the masking, forward and backward, over LeNet-300-100's three kernels, for
each formulation (including a float32 mask, which would cost 4x the memory).

    python benchmarks/masked_overhead.py --repeats 20 --ops \\
        --json benchmarks/results/masked_overhead.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_lottery import layers, models, pruning  # noqa: E402
from keras_lottery.conversion import clone_with_weights, copy_of  # noqa: E402
from keras_lottery.export import strip_masks  # noqa: E402

SETUPS = {
    "lenet": dict(
        name="lenet_300_100",
        shape=(28, 28, 1),
        batch=60,
        steps=100,
        optimizer=lambda: keras.optimizers.Adam(1.2e-3),
        optimizer_name="Adam(1.2e-3)",
        formulations=("masked_where", "masked_custom_gradient"),
    ),
    "resnet20": dict(
        name="cifar_resnet_20",
        shape=(32, 32, 3),
        batch=128,
        steps=6,
        optimizer=lambda: keras.optimizers.SGD(0.1, momentum=0.9),
        optimizer_name="SGD(0.1, momentum=0.9)",
        formulations=("masked_where", "masked_custom_gradient"),
    ),
}

GOAL = 1.03


# ------------------------------------------------------------------ variants


def _custom_gradient_kernel(self):
    kernel = ops.convert_to_tensor(self._kernel)
    mask = getattr(self, "mask", None)
    if mask is None:
        return kernel
    mask = ops.convert_to_tensor(mask)

    @ops.custom_gradient
    def identity_with_masked_gradient(value):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.multiply(upstream, ops.cast(mask, upstream.dtype))

        return value, grad

    return identity_with_masked_gradient(kernel)


def _where_kernel(self):
    kernel = ops.convert_to_tensor(self._kernel)
    mask = getattr(self, "mask", None)
    if mask is None:
        return kernel
    return ops.where(ops.convert_to_tensor(mask), kernel, ops.zeros((), kernel.dtype))


def twin_classes(kernel_fn, prefix: str) -> dict:
    """Masked class -> a subclass whose ``kernel`` property is ``kernel_fn``."""
    twins = {}
    for cls in layers.PLAIN_TWINS:

        def setter(self, value):
            self._kernel = value

        twins[cls] = type(
            prefix + cls.__name__, (cls,), {"kernel": property(kernel_fn, setter)}
        )
    return twins


FORMULATIONS = {
    "masked_custom_gradient": twin_classes(_custom_gradient_kernel, "Gradient"),
    "masked_where": twin_classes(_where_kernel, "Where"),
}


def _copy_all(source, target) -> None:
    for src, dst in zip(source.weights, target.weights, strict=True):
        dst.assign(copy_of(src))


def with_formulation(masked, twins: dict):
    """A copy of ``masked`` whose masked layers use another ``kernel`` property."""

    def clone(layer):
        cls = twins.get(type(layer), type(layer))
        return cls.from_config(layer.get_config())

    return clone_with_weights(masked, clone, _copy_all)


def variants(setup):
    keras.utils.set_random_seed(0)
    masked = models.get(setup["name"], num_classes=10, input_shape=setup["shape"])
    pruning.prune_magnitude(masked, 0.5)  # a realistic, non-trivial mask
    built = {
        "plain": strip_masks(masked),
        "plain_repeat": strip_masks(masked),
        "masked": masked,
    }
    for name in setup["formulations"]:
        built[name] = with_formulation(masked, FORMULATIONS[name])
    return built


def mask_memory_ratio(model) -> float:
    mask = kernel = 0
    for layer in pruning.masked_layers(model):
        size = int(np.prod(layer.mask.shape))
        mask += size * np.dtype(layer.mask.dtype).itemsize
        kernel += size * np.dtype(layer.raw_kernel.dtype).itemsize
    return mask / kernel


# ------------------------------------------------------------------ timing


def time_setup(key, repeats, seed):
    setup = SETUPS[key]
    rng = np.random.default_rng(seed)
    n = setup["batch"] * setup["steps"]
    x = rng.normal(size=(n, *setup["shape"])).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    built = variants(setup)
    for model in built.values():
        model.compile(setup["optimizer"](), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=setup["batch"], epochs=1, verbose=0)  # warm-up

    def epoch(model):
        def go():
            model.fit(
                x, y, batch_size=setup["batch"], epochs=1, verbose=0, shuffle=False
            )
            return setup["steps"]

        return go

    load_before = _harness.load_average()
    began = time.perf_counter()
    times = _harness.interleaved(
        {name: epoch(model) for name, model in built.items()}, repeats, seed=seed
    )
    summary = _harness.summarize(times, baseline="plain")
    return {
        "model": setup["name"],
        "batch": setup["batch"],
        "optimizer": setup["optimizer_name"],
        "steps_per_repeat": setup["steps"],
        "repeats": repeats,
        "seconds": round(time.perf_counter() - began, 1),
        "load_average": {"before": load_before, "after": _harness.load_average()},
        "ms_per_step": summary,
        "ratio": summary["masked"]["wall"]["ratio_paired_median"],
        "ratio_cpu": summary["masked"]["cpu"]["ratio_paired_median"],
        "noise_ratio": summary["plain_repeat"]["wall"]["ratio_paired_median"],
        "noise_ratio_cpu": summary["plain_repeat"]["cpu"]["ratio_paired_median"],
        "mask_bytes_over_kernel_bytes": mask_memory_ratio(built["masked"]),
    }


def time_masking_ops(repeats: int, seed: int, iterations: int = 200) -> dict:
    """CPU microseconds per LeNet-300-100 step spent in masking alone (TF).

    Each formulation runs forward and backward over the three kernels (784x300,
    300x100, 100x10; half the mask false) ``iterations`` times inside one
    ``tf.function``; ``extra_us`` is the median excess over the identity.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shapes = [(784, 300), (300, 100), (100, 10)]
    kernels = [tf.Variable(rng.normal(size=s).astype("float32")) for s in shapes]
    bool_masks = [tf.Variable(rng.random(s) > 0.5) for s in shapes]
    float_masks = [tf.Variable(tf.cast(m, "float32")) for m in bool_masks]
    upstream = [tf.constant(rng.normal(size=s).astype("float32")) for s in shapes]

    def gradient_times(mask):
        @tf.custom_gradient
        def identity(value):
            return tf.identity(value), lambda g: g * tf.cast(mask, g.dtype)

        return identity

    formulations = {
        "identity (no mask)": lambda k, m, f: tf.identity(k),
        "where(mask, kernel, 0)": lambda k, m, f: tf.where(m, k, tf.zeros((), k.dtype)),
        "kernel * cast(mask) [shipped]": lambda k, m, f: k * tf.cast(m, k.dtype),
        "kernel * float32 mask": lambda k, m, f: k * f,
        "custom gradient, bool mask": lambda k, m, f: gradient_times(m)(k),
        "custom gradient, float32 mask": lambda k, m, f: gradient_times(f)(k),
    }

    def compiled(fn):
        @tf.function
        def run():
            total = tf.constant(0.0)
            for _ in tf.range(iterations):
                with tf.GradientTape() as tape:
                    outs = [
                        fn(k, m, f)
                        for k, m, f in zip(
                            kernels, bool_masks, float_masks, strict=True
                        )
                    ]
                grads = tape.gradient(outs, kernels, output_gradients=upstream)
                total += tf.add_n(
                    [o[0, 0] + g[0, 0] for o, g in zip(outs, grads, strict=True)]
                )
            return total

        return run

    runs = {name: compiled(fn) for name, fn in formulations.items()}
    for run in runs.values():
        run()  # trace

    def timed(run):
        def go():
            run().numpy()
            return iterations

        return go

    times = _harness.interleaved(
        {name: timed(run) for name, run in runs.items()}, repeats, seed=seed
    )
    base = times["identity (no mask)"]["cpu"]
    return {
        name: {
            "cpu_us": round(1e6 * statistics.median(t["cpu"]), 1),
            "extra_us": round(
                1e6
                * statistics.median(a - b for a, b in zip(t["cpu"], base, strict=True)),
                1,
            ),
        }
        for name, t in times.items()
    }


# ------------------------------------------------------------------ main


def print_results(results) -> None:
    for r in results["models"]:
        print(
            f"\n{r['model']} (batch {r['batch']}, {r['optimizer']}; "
            f"{r['repeats']} repeats of {r['steps_per_repeat']} steps; "
            f"load {r['load_average']['before']} -> {r['load_average']['after']})"
        )
        print(
            f"  {'variant':<24}{'wall ms':>9}{'ratio':>8}{'cpu ms':>9}{'cpu ratio':>11}"
        )
        for name, entry in r["ms_per_step"].items():
            wall, cpu = entry["wall"], entry["cpu"]
            print(
                f"  {name:<24}{wall['median']:>9.3f}"
                f"{wall['ratio_paired_median']:>8.3f}{cpu['median']:>9.3f}"
                f"{cpu['ratio_paired_median']:>11.3f}"
            )
        print(
            f"  masked/plain = {r['ratio']:.3f} wall, {r['ratio_cpu']:.3f} CPU "
            f"(goal <= {GOAL}); plain_repeat/plain = {r['noise_ratio']:.3f} wall, "
            f"{r['noise_ratio_cpu']:.3f} CPU; mask bytes / kernel bytes = "
            f"{r['mask_bytes_over_kernel_bytes']:.2f}"
        )
    if results.get("masking_ops_us"):
        print("\nmasking alone, LeNet-300-100 kernels, CPU us per step (TF):")
        for name, entry in results["masking_ops_us"].items():
            print(f"  {name:<40}{entry['cpu_us']:>8.1f}{entry['extra_us']:>+9.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--models", nargs="+", default=list(SETUPS), choices=list(SETUPS)
    )
    parser.add_argument(
        "--resnet-repeats", type=int, help="repeats for ResNet-20 (default: --repeats)"
    )
    parser.add_argument("--threads", type=int, help="TF intra/inter-op threads")
    parser.add_argument("--ops", action="store_true", help="also time masking alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    tf_version = _configure_threads(args.threads)
    info = _harness.machine_info(
        keras=keras.__version__,
        backend=keras.backend.backend(),
        tensorflow=tf_version,
        threads=args.threads or "default",
    )
    _harness.header("masked_overhead", info)
    models_out = []
    for key in args.models:
        repeats = args.repeats
        if key == "resnet20" and args.resnet_repeats:
            repeats = args.resnet_repeats
        models_out.append(time_setup(key, repeats, args.seed))
    results = {"benchmark": "masked_overhead", "info": info, "models": models_out}
    if args.ops and keras.backend.backend() == "tensorflow":
        results["masking_ops_us"] = time_masking_ops(args.repeats, args.seed)
    print_results(results)
    _harness.write_json(args.json, results)


def _configure_threads(threads):
    try:
        import tensorflow as tf
    except ImportError:
        return None
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf.__version__


if __name__ == "__main__":
    main()
