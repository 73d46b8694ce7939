"""Multi-worker data parallelism on this machine: 2 worker processes
(``MultiWorkerMirroredStrategy`` over gRPC on 127.0.0.1) vs 1 process, same
global batch.

Each repeat launches, in a freshly shuffled order, the single-process baseline
and the 2-worker cluster; every process runs the real IMP driver for a dense
round and one pruned round of LeNet-300-100 on the digits data (1,088 training
images = 17 global batches of 64, 3 epochs a round, no controls) with one TensorFlow op
thread (``TF_NUM_INTRAOP_THREADS=1``) and reports:

- ``step_ms``: the median training step of the pruned round (the first step
  of the round, which traces the train function, left out), timed from a
  callback on the chief;
- ``round_s``: the pruned round's ``fit`` wall time (all its epochs, with
  validation), on the chief; of it, ``first_step_s`` (the first step, which
  traces the train function) and ``validation_s`` (the validation passes);
- ``process_s``: the launch to exit of the slowest process, as the parent
  sees it (TensorFlow import, cluster start-up, both rounds, test evaluation).

Ratios are 2 workers / 1 process, paired within a repeat (median over
repeats). The numbers say what the coordination costs when the workers share
one machine's cores; they are no prediction for workers on separate machines
or accelerators.

    python benchmarks/multiworker.py --repeats 3 \\
        --json benchmarks/results/multiworker.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from _harness import load_average, machine_info, paired_ratio, write_json  # noqa: E402

from keras_lottery import local_cluster  # noqa: E402

CONFIG = """
data: {name: digits, validation_size: 349}
model: {name: lenet_300_100}
training: {batch_size: 64, duration: 3ep, learning_rate: 0.01}
pruning: {fraction: 0.2, rounds: 1}
baselines: []
"""

# Filled by the callback (module-level: IMP deep-copies callbacks per phase).
_STEPS: list[float] = []  # every training step's seconds
_VALIDATION: list[float] = []  # every validation pass's seconds


def worker(distribute: bool) -> dict:
    """One process of a variant: the IMP run, timed; returns its numbers."""
    from keras_lottery import distributed

    strategy = distributed.make_strategy("multi_worker") if distribute else None
    import keras

    from keras_lottery.config import load_config
    from keras_lottery.methods.imp import IterativeMagnitudePruning
    from keras_lottery.runs import runner

    class StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _STEPS.clear()
            _VALIDATION.clear()

        def on_train_batch_begin(self, batch, logs=None):
            self._began = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            _STEPS.append(time.perf_counter() - self._began)

        def on_test_begin(self, logs=None):
            self._test_began = time.perf_counter()

        def on_test_end(self, logs=None):
            _VALIDATION.append(time.perf_counter() - self._test_began)

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(CONFIG)
    config = load_config(handle.name)
    os.remove(handle.name)
    with distributed.scope(strategy):
        recipe, model = runner.prepare(config)
        driver = IterativeMagnitudePruning.from_config(config, model, verbose=0)
        result = driver.run(
            model,
            test_data=recipe.test_data,
            callbacks=[StepClock()],
            **recipe.fit_kwargs(verbose=0),
        )
        distributed.barrier()
    pruned = result.rounds[-1]
    return {
        "chief": distributed.is_chief(strategy),
        "step_ms": 1000 * statistics.median(_STEPS[1:]),
        "first_step_s": _STEPS[0],
        "validation_s": sum(_VALIDATION),
        "round_s": pruned.ticket.wall_time,
        "steps": pruned.ticket.steps,
        "test_accuracy": pruned.ticket.test["accuracy"],
        "versions": {"keras": keras.__version__, "tensorflow": _tf_version()},
    }


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def launch(workers: int) -> dict:
    """Runs a variant (1 process, or a cluster of ``workers``) to its end."""
    ports = local_cluster.free_ports(workers)
    began = time.perf_counter()
    processes = []
    for index in range(workers):
        command = [sys.executable, __file__, "--worker"]
        config = None
        if workers > 1:
            config = local_cluster.tf_config(ports, index)
            command.append("--distribute")
        env = local_cluster.process_env(tf_config=config, pythonpath=ROOT)
        processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        )
    reports = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        if process.returncode:
            raise RuntimeError(f"a worker failed (exit {process.returncode})")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    (chief,) = [r for r in reports if r["chief"]]
    return {**chief, "process_s": time.perf_counter() - began}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distribute", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.distribute)), flush=True)
        return 0
    variants = {"one_process": 1, "two_workers": 2}
    rng = random.Random(0)
    runs = {name: [] for name in variants}
    load_before = load_average()
    for repeat in range(args.repeats):
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            runs[name].append(launch(variants[name]))
            print(f"repeat {repeat} {name}: {runs[name][-1]}", flush=True)
    summary = {}
    for key in ("step_ms", "round_s", "process_s"):
        one = [r[key] for r in runs["one_process"]]
        two = [r[key] for r in runs["two_workers"]]
        summary[key] = {
            "one_process_median": statistics.median(one),
            "two_workers_median": statistics.median(two),
            "ratio_paired_median": paired_ratio(two, one),
        }
        print(
            f"{key:>10}: 1 process {summary[key]['one_process_median']:.3f}, "
            f"2 workers {summary[key]['two_workers_median']:.3f}, "
            f"ratio {summary[key]['ratio_paired_median']:.2f}x"
        )
    payload = {
        "machine": machine_info(**runs["one_process"][0]["versions"]),
        "load_average": [load_before, load_average()],
        "command": "python benchmarks/multiworker.py " + " ".join(argv or sys.argv[1:]),
        "config": CONFIG,
        "runs": runs,
        "summary": summary,
    }
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
