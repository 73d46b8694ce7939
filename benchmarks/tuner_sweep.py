"""Wall time per trial of ``keras-lottery sweep --tuner`` (Keras Tuner's
distributed mode: a chief and ``--workers`` worker processes on 127.0.0.1) vs.
the same grid run by ``keras-lottery sweep --jobs <workers>``.

Both run the same tiny grid (Continuous Sparsification of a LeNet [8, 4] on 300
of scikit-learn's digits, 2 epochs of search and 2 of ticket training, over
``--points`` values of ``cs.mask_initial_value``) from an empty ``--out`` each
time, as the command line would: ``--jobs`` starts one Python process per
setting (two at a time), the tuner's workers run their trials in their own
process, and the chief serves the grid over gRPC. With trials this short, the
per-trial difference is what each way costs beyond the training itself
(interpreter + TensorFlow start per setting for ``--jobs``; gRPC requests,
oracle files and the chief's process for the tuner). ``--workers 1`` compares
``--tuner`` in one process (no chief) with ``--jobs 1``.

Each repeat runs both, in shuffled order; medians over repeats and the paired
ratio (tuner / jobs within a repeat). Every process gets one op thread.

    python benchmarks/tuner_sweep.py --repeats 3 \\
        --json benchmarks/results/tuner_sweep.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import _harness

from keras_lottery import local_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = """
method: cs
data: {name: digits, validation_size: 180, train_size: 300}
model: {name: lenet_300_100, options: {hidden: [8, 4]}}
training: {optimizer: sgd, learning_rate: 0.05, batch_size: 100, duration: 2ep}
cs: {rounds: 1, rewind: 1ep, layers: all}
baselines: []
"""


def sweep_command(config: str, out: str, points: int) -> list[str]:
    values = [round(-0.2 + 0.4 * i / max(1, points - 1), 4) for i in range(points)]
    return [
        sys.executable,
        "-m",
        "keras_lottery.cli",
        "sweep",
        config,
        "--out",
        out,
        "--grid",
        f"cs.mask_initial_value={values}",
    ]


def run_one(command: list[str], log) -> None:
    """Runs ``command`` to its end as one local process (no cluster role)."""
    env = local_cluster.process_env(pythonpath=ROOT)
    subprocess.run(command, env=env, stdout=log, stderr=log, check=True)


def run_jobs(config: str, points: int, workers: int, log) -> int:
    with tempfile.TemporaryDirectory() as out:
        run_one(sweep_command(config, out, points) + ["--jobs", str(workers)], log)
    return points


def run_tuner(config: str, points: int, workers: int, log) -> int:
    with tempfile.TemporaryDirectory() as out:
        command = sweep_command(config, out, points) + ["--tuner"]
        if workers == 1:  # one process runs the whole grid, no chief
            run_one(command, log)
            return points
        port = local_cluster.free_ports(1)[0]
        ids = ["chief"] + [f"worker{i}" for i in range(workers)]
        processes = [
            subprocess.Popen(
                command,
                env=local_cluster.process_env(
                    tuner=local_cluster.tuner_variables(tuner_id, port),
                    pythonpath=ROOT,
                ),
                stdout=log,
                stderr=log,
            )
            for tuner_id in ids
        ]
        codes = [p.wait(timeout=1800) for p in processes]
        if any(codes):
            raise RuntimeError(f"tuner processes {ids} exited with {codes}")
    return points


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=4, help="grid settings")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=os.devnull, help="the processes' output")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if min(args.repeats, args.points, args.workers) < 1:
        parser.error("--repeats, --points and --workers must be >= 1")
    info = _harness.machine_info()
    _harness.header("tuner_sweep", info)
    load_before = _harness.load_average()
    with tempfile.TemporaryDirectory() as folder, open(args.log, "a") as log:
        config = os.path.join(folder, "cs_digits.yaml")
        with open(config, "w") as handle:
            handle.write(CONFIG)
        runs = {
            "jobs": lambda: run_jobs(config, args.points, args.workers, log),
            "tuner": lambda: run_tuner(config, args.points, args.workers, log),
        }
        timed = _harness.interleaved(runs, args.repeats, seed=args.seed)
    # The work is in child processes: this script's own CPU time says nothing.
    times = {name: {"wall": clocks["wall"]} for name, clocks in timed.items()}
    summary = _harness.summarize(times, baseline="jobs", scale=1.0)
    result = {
        "benchmark": "tuner_sweep",
        "info": info,
        "settings": {
            "points": args.points,
            "workers": args.workers,
            "repeats": args.repeats,
            "config": CONFIG.strip(),
            "tuner": "chief + workers on 127.0.0.1"
            if args.workers > 1
            else "--tuner in one process",
            "unit": "seconds of wall time per trial",
        },
        "load_average": {"before": load_before, "after": _harness.load_average()},
        "per_trial": summary,
        "raw_wall_per_trial": {k: v["wall"] for k, v in times.items()},
    }
    jobs, tuner = (summary[k]["wall"] for k in ("jobs", "tuner"))
    print(
        f"per trial: --jobs {args.workers} {jobs['median']:.2f} s, tuner "
        f"({result['settings']['tuner']}) {tuner['median']:.2f} s; tuner/jobs "
        f"{tuner['ratio_paired_median']:.3f} (paired), "
        f"{tuner['ratio_of_medians']:.3f} (medians)"
    )
    _harness.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
