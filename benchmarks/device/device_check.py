"""The GPU device check: masked vs plain step time and the drivers, one JSON.

For a machine with one accelerator, JAX and no TensorFlow (the CIFAR data are fed
through :class:`rewinding_study.NumpyRecipe`, NumPy instead of ``tf.data``). It
measures, in one process, and writes one JSON (``--json``):

- ``step_time``: ms per training step of masked vs plain ResNet-20 (CIFAR, 32x32)
  and ResNet-50 (ImageNet-style, 224x224 by default) under the ``mixed_bfloat16``
  policy with ``jit_compile=True``. ``plain`` is ``export.strip_masks`` of the
  masked model (50% of the weights pruned by magnitude), so both hold the same
  weights; each repeat runs one ``model.fit`` epoch (50 steps for ResNet-20, 20 for
  ResNet-50) per variant in a shuffled order (``benchmarks/_harness.py``); the
  ratio is the median over repeats of masked / plain within a repeat, next to
  ``plain_repeat / plain`` (the noise floor).
- ``drivers``: wall time and results of one IMP round (round 0, the dense run, then
  one prune-rewind-retrain round) and one Continuous Sparsification search round
  plus its ticket training, through :func:`keras_lottery.runs.runner.run` on the
  CIFAR-10 subset, in float32 (the library's default policy).

Every section is written to the JSON as soon as it finishes, so a run stopped by
its time limit still returns the finished sections; a failing section records its
error and the others still run.

``--tiny`` is the CPU rehearsal (tiny batches and inputs, one step, two repeats,
a Conv-2 for the drivers on whatever ``--data`` holds); ``benchmarks/device_check.sh``
is the device entry point.

    KERAS_BACKEND=jax python benchmarks/device/device_check.py --tiny \\
        --data cifar10_subset.npz --json /tmp/device_check.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import _harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import rewinding_study  # noqa: E402

from keras_lottery import models, pruning  # noqa: E402
from keras_lottery.config import load_config  # noqa: E402
from keras_lottery.data.datasets import load_dataset  # noqa: E402
from keras_lottery.export import strip_masks  # noqa: E402
from keras_lottery.methods import registry  # noqa: E402
from keras_lottery.runs import runner  # noqa: E402

# name -> (registry model, input shape, batch); --tiny shrinks inputs and batches
# steps per timed epoch (default; --steps overrides): enough that fit's per-epoch
# overhead stays small next to the steps on a GPU
STEPS = {"resnet20": 50, "resnet50": 20}
FULL = {
    "resnet20": ("cifar_resnet_20", (32, 32, 3), 128),
    "resnet50": ("resnet50", (224, 224, 3), 64),
}
TINY = {
    "resnet20": ("cifar_resnet_20", (32, 32, 3), 4),
    "resnet50": ("resnet50", (32, 32, 3), 2),
}
# overrides of configs/resnet20_cifar10_subset.yaml for the driver section
DRIVERS_FULL = ["training.duration=2ep", "training.milestones=[]"]
DRIVERS_TINY = [
    "model.name=conv2",
    "model.options={}",
    "training.batch_size=16",
    "training.duration=2ep",
    "training.milestones=[]",
    "data.validation_size=16",
    "cs.layers=convs",
]


def versions() -> dict:
    import jax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(__import__("jaxlib"), "__version__", None),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "backend": keras.backend.backend(),
        "tensorflow_importable": _tensorflow_importable(),
    }


def _tensorflow_importable() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def device_info() -> dict:
    import jax

    devices = jax.devices()
    return {
        "platform": devices[0].platform,
        "kind": devices[0].device_kind,
        "count": len(devices),
        "cpu_count": os.cpu_count(),
        "cpu_model": _harness.cpu_model(),
    }


# ------------------------------------------------------------------ step time


def step_time(key, setup, steps, repeats, seed=0) -> dict:
    """Masked vs plain ms/step of one model under mixed_bfloat16 with jit."""
    name, shape, batch = setup
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(seed)
        masked = models.get(name, num_classes=10, input_shape=shape)
        pruning.prune_magnitude(masked, 0.5)
        built = {
            "plain": strip_masks(masked),
            "plain_repeat": strip_masks(masked),
            "masked": masked,
        }
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(batch * steps, *shape)).astype("float32")
        y = rng.integers(0, 10, batch * steps).astype("int32")
        compile_s = {}
        for variant, model in built.items():
            model.compile(
                keras.optimizers.SGD(0.1, momentum=0.9),
                "sparse_categorical_crossentropy",
                jit_compile=True,
            )
            began = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile+warm
            compile_s[variant] = round(time.perf_counter() - began, 2)

        def epoch(model):
            def go():
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
                return steps

            return go

        began = time.perf_counter()
        times = _harness.interleaved(
            {v: epoch(m) for v, m in built.items()}, repeats, seed=seed
        )
        summary = _harness.summarize(times, baseline="plain")
        return {
            "model": name,
            "input_shape": list(shape),
            "batch": batch,
            "policy": "mixed_bfloat16",
            "jit_compile": True,
            "optimizer": "SGD(0.1, momentum=0.9)",
            "steps_per_repeat": steps,
            "repeats": repeats,
            "first_epoch_seconds": compile_s,
            "timing_seconds": round(time.perf_counter() - began, 1),
            "ms_per_step": {v: s["wall"]["median"] for v, s in summary.items()},
            "ratio_masked_over_plain": summary["masked"]["wall"]["ratio_paired_median"],
            "noise_ratio": summary["plain_repeat"]["wall"]["ratio_paired_median"],
        }
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ------------------------------------------------------------------ drivers


def driver_run(method, data, overrides, out) -> dict:
    """One run of ``method`` through the library's runner; wall time and records."""
    extra = ["pruning.rounds=1"] if method == "imp" else ["cs.rounds=1", "cs.rewind=0"]
    config = load_config(
        rewinding_study.CONFIG,
        [f"data.path={os.path.abspath(data)}", f"method={method}", *extra, *overrides],
    )
    recipe = rewinding_study.NumpyRecipe(config, splits=load_dataset(config.data))
    keras.utils.set_random_seed(config.seed)
    model = registry.get(config.method).prepare(config, recipe, recipe.build_model())
    began = time.perf_counter()
    directory = runner.run(config, out=out, prepared=(recipe, model), verbose=0)
    wall = time.perf_counter() - began
    return {
        "model": config.model.name,
        "batch": config.training.batch_size,
        "duration": str(config.training.duration),
        "overrides": extra + list(overrides),
        "wall_seconds": round(wall, 1),
        "records": _records(directory),
    }


def _records(directory) -> list:
    """Accuracy, remaining fraction and wall time of each phase's record.json."""
    found = []
    for path in sorted(
        glob.glob(os.path.join(directory, "**", "record.json"), recursive=True)
    ):
        with open(path) as handle:
            record = json.load(handle)
        found.append(
            {
                "phase": os.path.relpath(os.path.dirname(path), directory),
                **_summary_of(record),
            }
        )
    return found


def _summary_of(record: dict) -> dict:
    def find(key, tree=record):
        if isinstance(tree, dict):
            if key in tree and not isinstance(tree[key], dict):
                return tree[key]
            for value in tree.values():
                hit = find(key, value)
                if hit is not None:
                    return hit
        return None

    test = find("test") if isinstance(record.get("test"), dict) else None
    accuracy = find("accuracy")
    return {
        "fraction_remaining": find("fraction_remaining"),
        "test_accuracy": accuracy if test is None else test.get("accuracy"),
        "wall_time": find("wall_time"),
    }


# ------------------------------------------------------------------ main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="result file")
    parser.add_argument("--data", help="cifar10_subset.npz (drivers)")
    parser.add_argument("--tiny", action="store_true", help="CPU rehearsal sizes")
    parser.add_argument("--steps", type=int, help="steps per repeat")
    parser.add_argument("--repeats", type=int, help="interleaved repeats")
    parser.add_argument("--models", nargs="*", default=list(FULL), choices=list(FULL))
    parser.add_argument(
        "--drivers", nargs="*", default=["imp", "cs"], choices=["imp", "cs"]
    )
    parser.add_argument(
        "--tiny-model",
        help="with --tiny: time this registry model instead of the ResNets "
        "(a fast rehearsal of the script's plumbing, e.g. conv2)",
    )
    parser.add_argument("--runs", help="folder for the drivers' run folders")
    args = parser.parse_args(argv)
    if args.drivers and not args.data:
        parser.error("--data is needed for --drivers imp/cs (or pass --drivers)")
    setups = TINY if args.tiny else FULL
    if args.tiny_model:
        if not args.tiny:
            parser.error("--tiny-model needs --tiny")
        setups = {k: (args.tiny_model, *v[1:]) for k, v in TINY.items()}
    repeats = args.repeats or (2 if args.tiny else 7)

    def steps(key):
        return args.steps or (1 if args.tiny else STEPS[key])

    result = {
        "benchmark": "device_check",
        "tiny": args.tiny,
        "date": _harness.machine_info()["date"],
        "device": device_info(),
        "versions": versions(),
        "step_time": {},
        "drivers": {},
        "errors": {},
    }
    began = time.perf_counter()

    def section(group, key, fn):
        start = time.perf_counter()
        try:
            result[group][key] = fn()
            print(f"[device_check] {group}/{key}: {json.dumps(result[group][key])}")
        except Exception as error:  # noqa: BLE001 -- record, go on with the rest
            result["errors"][f"{group}/{key}"] = (
                f"{type(error).__name__}: {error}\n" + traceback.format_exc()[-2000:]
            )
            print(f"[device_check] {group}/{key} failed: {error!r}")
        print(f"[device_check] {group}/{key}: {time.perf_counter() - start:.1f} s")
        result["total_seconds"] = round(time.perf_counter() - began, 1)
        _write(args.json, result)

    _write(args.json, result)
    runs = args.runs or tempfile.mkdtemp(prefix="device_check_runs_")
    overrides = DRIVERS_TINY if args.tiny else DRIVERS_FULL
    # cheapest first, ResNet-50 (the longest compile) last: a run stopped by its
    # time limit loses the fewest sections
    for key in [k for k in args.models if k != "resnet50"]:
        section(
            "step_time", key, lambda k=key: step_time(k, setups[k], steps(k), repeats)
        )
    for method in args.drivers:
        section(
            "drivers",
            method,
            lambda m=method: driver_run(m, args.data, overrides, runs),
        )
    if "resnet50" in args.models:
        section(
            "step_time",
            "resnet50",
            lambda: step_time(
                "resnet50", setups["resnet50"], steps("resnet50"), repeats
            ),
        )
    return result


def _write(path, payload) -> None:
    """Atomic write (temp file + rename): a killed run never leaves half a JSON."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(f.name, path)


if __name__ == "__main__":
    main()
