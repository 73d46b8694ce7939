"""IMP bookkeeping per round as a fraction of the round's training time.

Runs the real IMP driver (``IterativeMagnitudePruning.run`` with a checkpoint
folder, as ``keras-lottery run`` does) for a dense round and ``--rounds`` pruned
rounds, and timestamps it from a callback (``Clock``): every fit's begin and
end, each step, each validation pass and each epoch boundary. Per pruned round:

- ``between_fits``: from the end of one round's ``fit`` to the start of the
  next: the round record, checkpoint files (``trained.npz``, ``ticket.npz``,
  ``record.json``, each written atomically with fsync), pruning to the next
  density (``set_masks`` incl. optimizer-slot zeroing), ``restore_state``
  (rewind + mask re-application), compiling a fresh optimizer, and ``fit``'s
  own set-up (data adapter, callbacks);
- ``retrace``: the first training step's excess over the median step, plus the
  first validation pass's excess over the median validation pass: a fresh
  optimizer means ``fit`` traces new train and test functions every round;
- ``best_capture``: epoch-boundary time outside validation (dominated by
  ``capture_state`` of the best-validation weights, ``evaluate_at: best``);
- ``training``: the fit's wall time minus ``retrace`` and ``best_capture``.

The fraction of all per-round overhead is ``(between_fits + retrace +
best_capture) / training``; the fraction of the library's own bookkeeping counts
only the steps of the breakdown and ``best_capture``. The steps inside
``between_fits`` are timed one by one with the same public functions the driver
calls (``breakdown``); what they do not cover is ``fit``'s set-up and other
small costs (``residual``).
Finally ``recompile_cost`` measures by difference what building the fresh
optimizer by re-compiling adds per round (Keras's symbolic build and new traced
train/test functions): the fraction is also given without it.

Workloads:

- ``lenet``: LeNet-300-100 on the MNIST subset with ``configs/lenet_mnist.yaml``
  as in docs/results.md (8 epochs per round, 2,000 validation images, layerwise
  20%/10%, reset to init, ``evaluate_at: best``); ``--data`` or
  ``$KERAS_LOTTERY_DATA/mnist_subset.npz`` or ``../shared/data``; synthetic
  data of the same shape when none is found (said in the output). The
  training time is also extrapolated to the paper's 50K iterations per round.
- ``resnet20``: ResNet-20 (SGD 0.1, momentum 0.9, batch 128, global 20%) on
  640 CIFAR-10 subset images for 2 epochs per round (5 steps each); the
  training time of a real round is *extrapolated* from the measured median step
  time to the CIFAR-10 schedule of Frankle et al. (63K iterations at batch 128).
  For both, the round length from which all overhead is below 1% is printed.

Test-set evaluation (``keras-lottery run`` evaluates the test set every round)
is left out: it is measurement, not bookkeeping.

    python benchmarks/imp_bookkeeping.py --json benchmarks/results/imp_bookkeeping.json
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import _harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lottery import IterativeMagnitudePruning, pruning  # noqa: E402
from keras_lottery._io import atomic_write_bytes, atomic_write_json  # noqa: E402
from keras_lottery.config import load_config  # noqa: E402
from keras_lottery.recipes import Recipe  # noqa: E402
from keras_lottery.rewind import capture_state, restore_state  # noqa: E402
from keras_lottery.ticket import Ticket  # noqa: E402

GOAL = 0.01

WORKLOADS = {
    "lenet": dict(
        config="configs/lenet_mnist.yaml",
        data_file="mnist_subset.npz",
        # Frankle & Carbin (2019): 50K iterations at batch 60 per round.
        paper_steps=50_000,
        synthetic=dict(train=17_435, test=10_000, shape=(28, 28)),
        overrides=[
            "data.validation_size=2000",
            "training.duration=8ep",
            "pruning.evaluate_at=best",
            "baselines=[]",
        ],
    ),
    "resnet20": dict(
        config=None,
        data_file="cifar10_subset.npz",
        # Frankle et al. (2020), ResNet-20 on CIFAR-10: 63K iterations, batch 128.
        paper_steps=63_000,
        synthetic=dict(train=5_085, test=1_017, shape=(32, 32, 3)),
        overrides=[
            "data.name=cifar10",
            "data.validation_size=256",
            "data.train_size=640",
            "model.name=cifar_resnet_20",
            "training.optimizer=sgd",
            "training.learning_rate=0.1",
            "training.momentum=0.9",
            "training.batch_size=128",
            "training.duration=2ep",
            "pruning.scope=global",
            "pruning.layers=all",
            "pruning.evaluate_at=best",
            "baselines=[]",
        ],
    ),
}

#: (event, time) pairs from every Clock; IMP deep-copies callbacks every round,
#: so they are kept here rather than on the callback.
EVENTS: list[tuple[str, float]] = []


class Clock(keras.callbacks.Callback):
    """Appends ``(event, perf_counter())`` for the fit events IMP bookkeeping
    is measured between."""

    def _mark(self, event):
        EVENTS.append((event, time.perf_counter()))

    def on_train_begin(self, logs=None):
        self._mark("train_begin")

    def on_train_end(self, logs=None):
        self._mark("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self._mark("epoch_begin")

    def on_epoch_end(self, epoch, logs=None):
        self._mark("epoch_end")

    def on_train_batch_end(self, batch, logs=None):
        self._mark("step")

    def on_test_begin(self, logs=None):
        self._mark("test_begin")

    def on_test_end(self, logs=None):
        self._mark("test_end")


# ------------------------------------------------------------------ data


def data_path(args, workload) -> tuple[str, bool]:
    """(path of the dataset .npz, whether it is real data)."""
    candidates = [args.data] if args.data else []
    folder = os.environ.get("KERAS_LOTTERY_DATA")
    if folder:
        candidates.append(os.path.join(folder, workload["data_file"]))
    candidates.append(os.path.join(ROOT, "..", "shared", "data", workload["data_file"]))
    for path in candidates:
        if path and os.path.exists(path):
            return os.path.abspath(path), True
    return synthetic_npz(workload["synthetic"], args.scratch), False


def synthetic_npz(spec, folder) -> str:
    rng = np.random.default_rng(0)
    shape = spec["shape"]
    path = os.path.join(folder, f"synthetic_{'x'.join(map(str, shape))}.npz")
    np.savez(
        path,
        x_train=rng.integers(0, 256, (spec["train"], *shape), dtype=np.uint8),
        y_train=rng.integers(0, 10, spec["train"], dtype=np.uint8),
        x_test=rng.integers(0, 256, (spec["test"], *shape), dtype=np.uint8),
        y_test=rng.integers(0, 10, spec["test"], dtype=np.uint8),
    )
    return path


# ------------------------------------------------------------------ the run


def build_run(key, args):
    workload = WORKLOADS[key]
    path, real = data_path(args, workload)
    config_path = workload["config"] and os.path.join(ROOT, workload["config"])
    overrides = workload["overrides"] + [
        f"data.path={path}",
        f"pruning.rounds={args.rounds}",
        f"seed={args.seed}",
    ]
    config = load_config(config_path, overrides)
    recipe = Recipe(config)
    keras.utils.set_random_seed(config.seed)
    model = recipe.build_model()
    recipe.compile(model)
    imp = IterativeMagnitudePruning.from_config(
        config,
        model,
        checkpoint_dir=os.path.join(args.scratch, f"imp_{key}"),
        verbose=0,
    )
    return config, recipe, model, imp, path, real


def split_fits(events):
    fits, current = [], None
    for event, t in events:
        if event == "train_begin":
            current = [(event, t)]
        elif current is not None:
            current.append((event, t))
            if event == "train_end":
                fits.append(current)
                current = None
    return fits


def analyze_fit(events) -> dict:
    """Training time and in-fit bookkeeping of one fit from its events."""
    begin, end = events[0][1], events[-1][1]
    steps, validations, boundaries = [], [], []
    last, epoch_end, test_begin = None, None, None
    first_step_of_epoch = []
    for event, t in events[1:]:
        if event == "epoch_begin":
            if epoch_end is not None:
                boundaries.append(t - epoch_end)
            last = t
            first_step_of_epoch.append(True)
        elif event == "step":
            steps.append((t - last, first_step_of_epoch[-1]))
            first_step_of_epoch[-1] = False
            last = t
        elif event == "test_begin":
            test_begin = t
        elif event == "test_end":
            validations.append(t - test_begin)
        elif event == "epoch_end":
            epoch_end = t
        elif event == "train_end" and epoch_end is not None:
            boundaries.append(t - epoch_end)
    steady = statistics.median(s for s, first in steps if not first)
    retrace = max(0.0, steps[0][0] - steady)
    if len(validations) > 1:
        retrace += max(0.0, validations[0] - statistics.median(validations[1:]))
    capture = sum(boundaries)
    wall = end - begin
    return {
        "fit_seconds": wall,
        "steps": len(steps),
        "median_step_seconds": steady,
        "validation_seconds": sum(validations),
        "retrace_seconds": retrace,
        "best_capture_seconds": capture,
        "training_seconds": wall - retrace - capture,
    }


def breakdown(model, imp, recipe, config, rewind_state, scratch) -> dict:
    """Times, one by one, the public calls the driver makes between two fits
    (on the model as the run left it, pruning one round further)."""
    out = {}

    def timed(name, fn):
        began = time.perf_counter()
        value = fn()
        out[name] = time.perf_counter() - began
        return value

    folder = os.path.join(scratch, "breakdown")
    os.makedirs(folder, exist_ok=True)
    timed("sparsity_report", lambda: pruning.sparsity_report(model))
    state = timed("capture_state", lambda: capture_state(model))

    def save_state():
        buffer = io.BytesIO()
        np.savez(buffer, *state)
        atomic_write_bytes(os.path.join(folder, "trained.npz"), buffer.getvalue())

    timed("write trained.npz", save_state)
    ticket = timed(
        "Ticket.from_model",
        lambda: Ticket.from_model(model, weights=rewind_state, method="imp"),
    )
    timed("Ticket.save", lambda: ticket.save(os.path.join(folder, "ticket.npz")))
    timed(
        "write record.json",
        lambda: atomic_write_json(os.path.join(folder, "record.json"), {"r": 1}),
    )
    density, layer_densities = imp.densities(imp.rounds + 1)
    timed(
        "prune_to_density (incl. set_masks)",
        lambda: pruning.prune_to_density(
            model,
            density,
            scope=imp.scope,
            layers=imp.layers,
            exclude=imp.exclude,
            layer_densities=layer_densities,
        ),
    )
    timed("get_masks", lambda: pruning.get_masks(model))
    timed("restore_state (rewind + masks)", lambda: restore_state(model, rewind_state))
    compile_config = model.get_compile_config()
    timed(
        "compile (fresh optimizer)", lambda: model.compile_from_config(compile_config)
    )
    return out


def recompile_cost(model, recipe, repeats: int = 2) -> dict:
    """Seconds a re-compile adds to the next ``fit``, by difference.

    Times short fits (6 steps, 2 validation batches, the recipe's data) right
    after ``compile_from_config`` and, alternately, again without re-compiling;
    the median difference (plus the compile call itself) is what building a
    fresh optimizer by re-compiling costs per round: Keras's symbolic build of
    the new optimizer and metrics, and tracing new train and test functions.
    """
    kwargs = recipe.fit_kwargs(verbose=0)
    kwargs.update(
        epochs=1, steps_per_epoch=min(6, recipe.steps_per_epoch), validation_steps=2
    )
    config = model.get_compile_config()

    def fit_seconds():
        del EVENTS[:]
        began = time.perf_counter()
        model.fit(callbacks=[Clock()], **kwargs)
        setup = EVENTS[0][1] - began  # until on_train_begin
        return time.perf_counter() - began, setup

    fresh, reused, setups, compiles = [], [], [], []
    for _ in range(repeats):
        began = time.perf_counter()
        model.compile_from_config(config)
        compiles.append(time.perf_counter() - began)
        fresh.append(fit_seconds()[0])
        seconds, setup = fit_seconds()
        reused.append(seconds)
        setups.append(setup)
    compile_seconds = statistics.median(compiles)
    fit_difference = statistics.median(
        f - r for f, r in zip(fresh, reused, strict=True)
    )
    return {
        "compile_call": compile_seconds,
        "first_fit_after_compile": statistics.median(fresh),
        "same_fit_without_recompile": statistics.median(reused),
        "fit_setup_without_recompile": statistics.median(setups),
        "per_round": compile_seconds + fit_difference,
    }


def run_workload(key, args) -> dict:
    config, recipe, model, imp, path, real = build_run(key, args)
    del EVENTS[:]
    load_before = _harness.load_average()
    began = time.perf_counter()
    imp.run(model, callbacks=[Clock()], **recipe.fit_kwargs(verbose=0))
    total = time.perf_counter() - began
    load_after = _harness.load_average()
    fits = split_fits(EVENTS)
    rounds = []
    for r, fit in enumerate(fits):
        row = analyze_fit(fit)
        row["round"] = r
        if r:
            row["between_fits_seconds"] = fit[0][1] - fits[r - 1][-1][1]
        rounds.append(row)
    pruned = rounds[1:]

    def mean(key_):
        return statistics.mean(r[key_] for r in pruned)

    between, retrace = mean("between_fits_seconds"), mean("retrace_seconds")
    capture, training = mean("best_capture_seconds"), mean("training_seconds")
    step = statistics.median(r["median_step_seconds"] for r in pruned)
    rewind_state = _load_rewind_state(imp)
    parts = breakdown(model, imp, recipe, config, rewind_state, args.scratch)
    recompile = recompile_cost(model, recipe)
    bookkeeping = between + retrace + capture
    without_recompile = bookkeeping - recompile["per_round"]
    library = sum(parts.values()) + capture
    result = {
        "workload": key,
        "model": config.model.name,
        "data": path if real else f"synthetic ({path})",
        "real_data": real,
        "settings": {
            "epochs_per_round": recipe.epochs,
            "steps_per_epoch": recipe.steps_per_epoch,
            "batch_size": recipe.batch_size,
            "train_examples": len(recipe.splits.x_train),
            "validation_examples": len(recipe.splits.x_val),
            "rounds": args.rounds,
            "scope": config.pruning.scope,
            "rewind": config.pruning.rewind,
            "evaluate_at": config.pruning.evaluate_at,
            "seed": config.seed,
        },
        "load_average": {"before": load_before, "after": load_after},
        "run_seconds": round(total, 2),
        "rounds": [{k: _r(v) for k, v in row.items()} for row in rounds],
        "per_pruned_round_seconds": {
            "between_fits": _r(between),
            "retrace": _r(retrace),
            "best_capture": _r(capture),
            "bookkeeping": _r(bookkeeping),
            "training": _r(training),
            "median_step": _r(step),
        },
        "breakdown_seconds": {k: _r(v) for k, v in parts.items()},
        "breakdown_residual_seconds": _r(between - sum(parts.values())),
        "recompile_seconds": {k: _r(v) for k, v in recompile.items()},
        "library_bookkeeping_seconds": _r(library),
        "fraction_library": _r(library / training),
        "fraction": _r(bookkeeping / training),
        "fraction_without_retrace": _r((between + capture) / training),
        "fraction_without_recompile": _r(without_recompile / training),
        "goal": GOAL,
    }
    paper_steps = WORKLOADS[key]["paper_steps"]
    if paper_steps:
        extrapolated = paper_steps * step
        result["extrapolated"] = {
            "steps": paper_steps,
            "training_seconds": _r(extrapolated),
            "fraction": _r(bookkeeping / extrapolated),
            "fraction_without_retrace": _r((between + capture) / extrapolated),
            "fraction_without_recompile": _r(without_recompile / extrapolated),
            "fraction_library": _r(library / extrapolated),
            "steps_for_goal": int(np.ceil(bookkeeping / (GOAL * step))),
            "note": "training time = median measured step x the paper's "
            "iterations per round; validation passes not included",
        }
    return result


def _load_rewind_state(imp) -> list[np.ndarray]:
    path = os.path.join(imp.checkpoint_dir, "rewind_state.npz")
    with np.load(path) as data:
        return [np.array(data[f"arr_{i}"]) for i in range(len(data.files))]


def _r(value):
    """Four decimals, or three significant digits for smaller values."""
    if not isinstance(value, float):
        return value
    return round(value, 4) if abs(value) >= 1e-3 else float(f"{value:.3g}")


def print_result(r) -> None:
    s = r["settings"]
    p = r["per_pruned_round_seconds"]
    print(
        f"\n{r['workload']}: {r['model']}, {s['train_examples']} training examples "
        f"({'real' if r['real_data'] else 'SYNTHETIC'} data), {s['epochs_per_round']}"
        f" epochs x {s['steps_per_epoch']} steps per round, batch {s['batch_size']};"
        f" load {r['load_average']['before']} -> {r['load_average']['after']}"
    )
    print(
        f"  per pruned round (mean of {s['rounds']}): training {p['training']:.2f} s"
        f" (median step {1000 * p['median_step']:.1f} ms); bookkeeping "
        f"{p['bookkeeping']:.3f} s = between fits {p['between_fits']:.3f} + retrace "
        f"{p['retrace']:.3f} + best-weights capture {p['best_capture']:.3f}"
    )
    c = r["recompile_seconds"]
    print(
        f"  all per-round overhead / training = {r['fraction']:.2%}; without "
        f"re-compiling {r['fraction_without_recompile']:.2%}; library bookkeeping "
        f"alone ({r['library_bookkeeping_seconds']:.3f} s: the steps below + "
        f"best-weights capture) = {r['fraction_library']:.2%} (goal <= {GOAL:.0%})"
    )
    print(
        f"  re-compiling (fresh optimizer) costs {c['per_round']:.3f} s per round: "
        f"compile call {c['compile_call']:.3f} s, short fit "
        f"{c['first_fit_after_compile']:.3f} s after it vs "
        f"{c['same_fit_without_recompile']:.3f} s without (of which fit set-up "
        f"{c['fit_setup_without_recompile']:.3f} s)"
    )
    if "extrapolated" in r:
        e = r["extrapolated"]
        hours = e["training_seconds"] / 3600
        print(
            f"  EXTRAPOLATED to the paper's {e['steps']:,} steps per round "
            f"({hours:.2f} h at the measured step time): all overhead "
            f"{100 * e['fraction']:.2g}%, library bookkeeping "
            f"{100 * e['fraction_library']:.2g}%; all overhead is 1% of training "
            f"from {e['steps_for_goal']:,} steps per round on"
        )
    print("  between fits, step by step:")
    for name, seconds in r["breakdown_seconds"].items():
        print(f"    {name:<38}{seconds:>8.3f} s")
    print(
        f"    {'fit set-up and the rest (residual)':<38}"
        f"{r['breakdown_residual_seconds']:>8.3f} s"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS)
    )
    parser.add_argument("--rounds", type=int, default=2, help="pruned rounds")
    parser.add_argument("--data", help="dataset .npz (for a single workload)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.data and len(args.workloads) > 1:
        parser.error("--data needs a single --workloads entry")
    info = _harness.machine_info(
        keras=keras.__version__, backend=keras.backend.backend()
    )
    _harness.header("imp_bookkeeping", info)
    results = []
    with tempfile.TemporaryDirectory(prefix="imp-bookkeeping-") as scratch:
        args.scratch = scratch
        for key in args.workloads:
            results.append(run_workload(key, args))
            print_result(results[-1])
    _harness.write_json(
        args.json, {"benchmark": "imp_bookkeeping", "info": info, "workloads": results}
    )
    return results


if __name__ == "__main__":
    main()
