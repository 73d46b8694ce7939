"""Global magnitude pruning of ResNet-50 (25.6M weights): seconds on this CPU.

Builds ``keras.applications.ResNet50(weights=None)``, makes it prunable
(``keras_lottery.prunable``: 53 Conv2D + 1 Dense, 23.5M kernel weights) and
times ``pruning.prune_magnitude(model, 0.2, scope="global")``:

- ``first_call``: the first call in the process on the dense model (includes
  TensorFlow's one-off op initialization);
- ``dense``: steady state on the dense model (median over repeats; the model is
  reset to dense between repeats, outside the timing);
- ``pruned``: the same call on an already 20%-pruned model (so 20% of the
  remaining 80% are pruned), reset to that state between repeats;
- ``dense_with_slots``: as ``dense``, with the model compiled with SGD+momentum
  and its optimizer built, so ``set_masks`` also zeroes the momentum slots (what
  happens when pruning inside training or in IMP before the fresh optimizer).

Each call is split into selecting the masks (``magnitude_masks``) and writing
them (``set_masks``). ``--profile`` prints a cProfile summary of one call.

    python benchmarks/global_pruning.py --repeats 5 \\
        --json benchmarks/results/global_pruning.json
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
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

import keras_lottery as kl  # noqa: E402
from keras_lottery import pruning  # noqa: E402

FRACTION = 0.2
GOAL_SECONDS = 2.0


def build_resnet50(seed: int):
    keras.utils.set_random_seed(seed)
    return kl.prunable(keras.applications.ResNet50(weights=None))


def snapshot(model) -> dict:
    """Masks and raw kernels of every masked layer, to reset between repeats."""
    return {
        layer.name: (layer.get_mask(), np.array(layer.raw_kernel.numpy()))
        for layer in pruning.masked_layers(model)
    }


def reset(model, state: dict) -> None:
    for layer in pruning.masked_layers(model):
        mask, kernel = state[layer.name]
        layer.mask.assign(mask)
        layer.raw_kernel.assign(kernel)


def timed_call(model) -> dict:
    """One ``prune_magnitude(model, 0.2, scope="global")``, split in two parts
    exactly as ``prune_magnitude`` does them."""
    began = time.perf_counter()
    masks = pruning.magnitude_masks(model, FRACTION, scope="global")
    selected = time.perf_counter()
    pruning.set_masks(model, masks)
    done = time.perf_counter()
    return {
        "total": done - began,
        "select": selected - began,
        "write": done - selected,
    }


def repeated(model, state, repeats) -> dict:
    calls = []
    for _ in range(repeats):
        reset(model, state)
        calls.append(timed_call(model))
    return {
        key: round(statistics.median(c[key] for c in calls), 4) for key in calls[0]
    } | {"min_total": round(min(c["total"] for c in calls), 4)}


def run(args) -> dict:
    model = build_resnet50(args.seed)
    layers = pruning.masked_layers(model)
    weights = sum(int(np.prod(layer.raw_kernel.shape)) for layer in layers)
    dense_state = snapshot(model)
    load_before = _harness.load_average()
    first = timed_call(model)  # also leaves the model 20% pruned
    remaining = pruning.sparsity_report(model).fraction_remaining
    pruned_state = snapshot(model)
    results = {
        "first_call": {k: round(v, 4) for k, v in first.items()},
        "dense": repeated(model, dense_state, args.repeats),
        "pruned": repeated(model, pruned_state, args.repeats),
    }
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    results["dense_with_slots"] = repeated(model, dense_state, args.repeats)
    load_after = _harness.load_average()
    if args.profile:
        reset(model, dense_state)
        profiler = cProfile.Profile()
        profiler.enable()
        pruning.prune_magnitude(model, FRACTION, scope="global")
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)
    return {
        "benchmark": "global_pruning",
        "info": _harness.machine_info(
            keras=keras.__version__,
            backend=keras.backend.backend(),
            tensorflow=_tf_version(),
        ),
        "settings": {
            "model": "keras.applications.ResNet50(weights=None), prunable()",
            "call": f'prune_magnitude(model, {FRACTION}, scope="global")',
            "masked_layers": len(layers),
            "kernel_weights": weights,
            "all_weights": sum(
                int(np.prod(v.shape))
                for v in model.weights
                if all(v is not layer.mask for layer in layers)
            ),
            "repeats": args.repeats,
            "seed": args.seed,
        },
        "remaining_after_first_call": round(remaining, 6),
        "load_average": {"before": load_before, "after": load_after},
        "seconds": results,
        "goal_seconds": GOAL_SECONDS,
        "goal_met": results["dense"]["total"] < GOAL_SECONDS
        and results["pruned"]["total"] < GOAL_SECONDS,
    }


def _tf_version() -> str | None:
    try:
        import tensorflow as tf

        return tf.__version__
    except ImportError:
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    result = run(args)
    _harness.header("global_pruning", result["info"])
    s = result["settings"]
    print(
        f"# {s['call']} on ResNet-50: {s['masked_layers']} masked layers, "
        f"{s['kernel_weights']:,} kernel weights; repeats {s['repeats']}; "
        f"load {result['load_average']}"
    )
    print(f"{'case':<18}{'total s':>9}{'select s':>10}{'write s':>9}")
    for case, t in result["seconds"].items():
        print(f"{case:<18}{t['total']:>9.3f}{t['select']:>10.3f}{t['write']:>9.3f}")
    print(
        f"goal < {GOAL_SECONDS} s (steady state, dense and pruned): "
        f"{'met' if result['goal_met'] else 'NOT met'}"
    )
    _harness.write_json(args.json, result)


if __name__ == "__main__":
    main()
