"""Multi-worker data-parallel runs (keras_lottery.distributed).

The process tests start two `keras-lottery run --distribute multi_worker`
workers on 127.0.0.1 (free ports picked at runtime) and compare their run
folder with a single-process run of the same config (same global batch):
masks equal, accuracies and weights equal within float tolerance. Each takes
about 40 s on the quiet 2-core machine, minutes on a loaded one (each worker
imports TensorFlow and all-reduces over gRPC): `make test` runs the 2-worker IMP
test, `make test-multiworker` every test marked `multiworker`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from keras_lottery import distributed, local_cluster, paths
from keras_lottery.config import load_config
from keras_lottery.errors import ConfigError, DistributedError
from keras_lottery.runs import runner
from keras_lottery.runs.branches import run_branch
from keras_lottery.ticket import Ticket
from tests.conftest import tensorflow_only, write_tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 2


# ------------------------------------------------------------------ in-process


def test_without_a_multi_worker_strategy_everything_is_local(tmp_path):
    masks = [np.array([True, False]), np.ones((2, 2), np.float32)]
    assert distributed.from_chief(masks) == masks
    assert distributed.is_chief()
    assert distributed.write_dir(str(tmp_path)) == str(tmp_path)
    distributed.check_in_sync(None, "nothing to compare")  # no strategy: no-op
    distributed.barrier()


@pytest.mark.parametrize(
    ("name", "tf_config", "message"),
    [
        ("ring", None, "Unknown distribution strategy 'ring'; allowed"),
        ("multi_worker", None, "--distribute multi_worker needs TF_CONFIG"),
        ("multi_worker", "{not json", "TF_CONFIG must be JSON with 'cluster'"),
        ("multi_worker", '{"cluster": {}}', "TF_CONFIG must be JSON"),
    ],
)
def test_make_strategy_refuses_bad_settings(monkeypatch, name, tf_config, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match=message):
        distributed.make_strategy(name)


class _FakeStrategy:
    """Two workers with one replica each; the other worker's values are
    ``theirs`` (what ``_sum_from`` would all-reduce)."""

    num_replicas_in_sync = 2

    class cluster_resolver:  # noqa: N801 - mimics the attribute
        task_type, task_id = "worker", 0

        @staticmethod
        def cluster_spec():
            class Spec:
                def as_dict(self):
                    return {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}

            return Spec()


def _two_workers(monkeypatch, other):
    """Simulates a second worker whose check_in_sync digest is ``other(mine)``."""
    strategy = _FakeStrategy()
    monkeypatch.setattr(distributed, "_multi_worker", lambda: strategy)

    def sum_from(_, values, only_first):
        if only_first:  # this worker is the chief
            return values
        theirs = other(values)
        return values + theirs

    monkeypatch.setattr(distributed, "_sum_from", sum_from)


@tensorflow_only
def test_check_in_sync_raises_on_every_worker_when_one_differs(monkeypatch):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    # The other worker found a difference (it adds 1 to the disagreement sum).
    _two_workers(monkeypatch, lambda values: np.ones_like(values))
    with pytest.raises(DistributedError, match="Before IMP round 1 .* 1 worker"):
        distributed.check_in_sync(model, "IMP round 1 (ticket)")
    # It agrees: nothing raised.
    _two_workers(monkeypatch, lambda values: np.zeros_like(values))
    distributed.check_in_sync(model, "IMP round 1 (ticket)")


def test_from_chief_keeps_shapes_and_dtypes(monkeypatch):
    sent = []

    def chief_values(_, values, only_first):
        sent.append(values.dtype)
        return values  # this worker is the chief: its values come back

    monkeypatch.setattr(distributed, "_multi_worker", lambda: _FakeStrategy())
    monkeypatch.setattr(distributed, "_sum_from", chief_values)
    masks = [np.array([[True, False]]), np.array([False, True, True])]
    got = distributed.from_chief(masks)
    assert sent == [np.float32]  # one all-reduce; masks travel as float32
    for a, b in zip(got, masks, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert distributed.from_chief([np.arange(3)])[0].tolist() == [0, 1, 2]
    assert sent[-1] == np.float64


def test_workers_write_to_their_own_temporary_folder(monkeypatch, tmp_path):
    strategy = _FakeStrategy()
    monkeypatch.setattr(distributed, "_multi_worker", lambda: strategy)
    root = str(tmp_path / "imp_abc")
    assert distributed.write_dir(root) == root  # worker 0 without chief: chief
    monkeypatch.setattr(strategy.cluster_resolver, "task_id", 1)
    assert not distributed.is_chief()
    temp = distributed.write_dir(root)
    assert temp == distributed.worker_temp_dir(root)
    assert temp.endswith(os.path.join("keras_lottery_workers", "imp_abc_worker_1"))


# ------------------------------------------------------------------ two processes


def _launch(command, kill_worker=None) -> list[subprocess.Popen]:
    """Starts worker 0 (the chief) and worker 1 of a 2-worker cluster, each
    running ``keras-lottery *command --distribute multi_worker`` (or, for a
    command starting with ``-c``, ``python *command``); with ``kill_worker =
    (index, point)`` that worker SIGKILLs itself at its
    ``KERAS_LOTTERY_DRILL_KILL`` point."""
    ports = local_cluster.free_ports(2)
    workers = []
    for index in range(2):
        kill = {}
        if kill_worker is not None and kill_worker[0] == index:
            kill = {"KERAS_LOTTERY_DRILL_KILL": kill_worker[1]}
        env = local_cluster.process_env(
            {k: v for k, v in os.environ.items() if k != "KERAS_LOTTERY_DRILL_KILL"},
            tf_config=local_cluster.tf_config(ports, index),
            pythonpath=ROOT,
            **kill,
        )
        if command[0] == "-c":
            argv = [sys.executable, *command]
        else:
            argv = [sys.executable, "-m", "keras_lottery.cli", *map(str, command)]
            argv += ["--distribute", "multi_worker"]
        workers.append(
            subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return workers


def _finish(workers, timeout=900) -> list[str]:
    """The workers' outputs once all exited 0; on any failure (a timeout
    included) every worker still running is killed."""
    outputs = []
    try:
        for worker in workers:
            output, _ = worker.communicate(timeout=timeout)
            assert worker.returncode == 0, output[-3000:]
            outputs.append(output)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    return outputs


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny IMP config (no controls) run in this process."""
    folder = tmp_path_factory.mktemp("reference")
    config = write_tiny_config(folder, baselines="[]")
    directory = runner.run(load_config(str(config)), out=str(folder / "runs"))
    return config, directory


def _rounds(directory) -> list[tuple[dict, dict]]:
    out = []
    for r in range(ROUNDS + 1):
        phase = os.path.join(directory, f"round_{r:03d}")
        with open(os.path.join(phase, "record.json")) as f:
            record = json.load(f)
        out.append((Ticket.load(os.path.join(phase, "ticket.npz")), record))
    return out


def _assert_same_run(got, want):
    for (ticket, record), (ticket_1, record_1) in zip(
        _rounds(got), _rounds(want), strict=True
    ):
        assert ticket.masks.keys() == ticket_1.masks.keys()
        for name, mask in ticket.masks.items():
            np.testing.assert_array_equal(mask, ticket_1.masks[name])
        for w, w_1 in zip(ticket.weights, ticket_1.weights, strict=True):
            np.testing.assert_allclose(w, w_1, rtol=1e-5, atol=1e-6)
        assert record["fraction_remaining"] == record_1["fraction_remaining"]
        for key, value in record_1["ticket"]["test"].items():
            assert record["ticket"]["test"][key] == pytest.approx(value, abs=1e-5)
        for key, value in record_1["ticket"]["final"].items():
            assert record["ticket"]["final"][key] == pytest.approx(value, abs=1e-5)


@pytest.mark.multiworker  # in make test: about 40 s on the quiet 2-core machine
@tensorflow_only
def test_two_workers_match_one_process(reference, tmp_path):
    config, single = reference
    outputs = _finish(_launch(["run", config, "--out", tmp_path]))
    directory = os.path.join(tmp_path, os.path.basename(single))
    assert os.path.exists(os.path.join(directory, "result.json"))
    _assert_same_run(directory, single)
    assert "worker done; the chief wrote" in outputs[1]
    assert "run folder:" in outputs[0]
    temp = os.path.join(tempfile.gettempdir(), "keras_lottery_workers")
    leftover = os.path.join(temp, f"{os.path.basename(directory)}_worker_1")
    assert not os.path.exists(leftover)  # the worker's temporary folder is gone


@pytest.mark.multiworker
@pytest.mark.slow
@tensorflow_only
def test_a_branch_on_two_workers_matches_one_process(reference, tmp_path):
    """A control trained later from round 1, on the two workers, of a copy of
    the single-process run folder."""
    _, single = reference
    directory = str(tmp_path / os.path.basename(single))
    shutil.copytree(single, directory)
    branch = ["--round", "1", "--kind", "shuffle_masks"]
    _finish(_launch(["branch", directory, *branch]))
    want = run_branch(single, 1, "shuffle_masks", verbose=0)
    record = paths.record(paths.branch_dir(directory, 1, "shuffle_masks", 0))
    with open(record) as f:
        got = json.load(f)
    assert got["fraction_remaining"] == want["fraction_remaining"]
    assert got["layers_remaining"] == want["layers_remaining"]
    assert got["training"]["test"] == pytest.approx(want["training"]["test"], abs=1e-5)


def _kill_after_round_0(directory, chief, worker) -> None:
    """Waits for worker 1 to kill itself after round 0, then for the chief to
    finish writing round 0, and kills the chief (a relaunch of the job)."""
    worker.wait(timeout=900)
    assert worker.returncode == -signal.SIGKILL
    # The chief writes round 0 before its next all-reduce; the job is then
    # relaunched as a whole (the chief would fail on its own, later).
    record = os.path.join(directory, "round_000", "record.json")
    deadline = time.monotonic() + 600
    while not os.path.exists(record) and chief.poll() is None:
        assert time.monotonic() < deadline, "the chief never finished round 0"
        time.sleep(0.2)
    chief.kill()
    chief.communicate()
    assert os.path.exists(record)
    assert not os.path.exists(os.path.join(directory, "round_001", "record.json"))


@pytest.mark.multiworker
@pytest.mark.slow
@tensorflow_only
def test_a_killed_worker_and_a_relaunch_resume_from_the_last_round(reference, tmp_path):
    config, single = reference
    directory = os.path.join(tmp_path, os.path.basename(single))
    # Worker 1 writes (to its temporary folder) rewind_state, then round 0's
    # trained, ticket, manifest and record: it dies right after round 0.
    command = ["run", config, "--out", tmp_path]
    workers = _launch(command, kill_worker=(1, "5:after"))
    try:
        _kill_after_round_0(directory, *workers)
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.communicate()
    outputs = _finish(_launch(command))
    assert "resuming after round 0" in outputs[0]
    assert "resuming after round 0" in outputs[1]
    _assert_same_run(directory, single)


CS_YAML = """
method: cs
data: {{name: tiny, path: {data}, validation_size: 10}}
model: {{name: lenet_300_100, options: {{hidden: [16, 8]}}}}
training: {{optimizer: sgd, learning_rate: 0.05, batch_size: 16, duration: 2ep}}
cs: {{rounds: 1, rewind: 1ep, layers: all}}
baselines: []
"""


def cs_and_gradual(strategy, folder: str) -> None:
    """What each process of the CS / GradualPruning test runs: a CS run of
    ``folder/cs.yaml`` into ``folder/runs``, then a ``fit`` with
    ``GradualPruning`` whose masks and weights the chief saves to
    ``folder/gradual.npz``."""
    import keras

    from keras_lottery import pruning
    from keras_lottery.gradual import GradualPruning
    from keras_lottery.pruning_schedules import PolynomialDecay
    from tests.helpers import classification_data, mlp

    config = load_config(os.path.join(folder, "cs.yaml"))
    runner.run(config, out=os.path.join(folder, "runs"), strategy=strategy)
    x, y = classification_data(n=128)
    with distributed.scope(strategy):
        keras.utils.set_random_seed(7)
        model = mlp()
        model.compile(
            keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy"
        )
        schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, frequency=2)
        model.fit(
            x,
            y,
            epochs=3,
            batch_size=32,
            verbose=0,
            callbacks=[GradualPruning(schedule)],
        )
        if distributed.is_chief(strategy):
            masks = pruning.get_masks(model)
            weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
            np.savez(os.path.join(folder, "gradual.npz"), **masks, **weights)
        distributed.barrier()


_CS_WORKER = """
import sys
from keras_lottery import distributed
strategy = distributed.make_strategy("multi_worker")
from tests.test_distributed import cs_and_gradual
cs_and_gradual(strategy, sys.argv[1])
"""


@pytest.mark.multiworker
@pytest.mark.slow
@tensorflow_only
def test_cs_search_and_gradual_pruning_in_fit_on_two_workers(tmp_path):
    from tests.conftest import write_tiny_dataset

    single, multi = tmp_path / "single", tmp_path / "multi"
    data = write_tiny_dataset(tmp_path)
    for folder in (single, multi):
        folder.mkdir()
        (folder / "cs.yaml").write_text(CS_YAML.format(data=data))
    cs_and_gradual(None, str(single))
    workers = _launch(["-c", _CS_WORKER, multi])
    _finish(workers)
    (run,) = os.listdir(single / "runs")
    one, two = single / "runs" / run, multi / "runs" / run
    ticket, ticket_1 = Ticket.load(two / "ticket.npz"), Ticket.load(one / "ticket.npz")
    for name, mask in ticket_1.masks.items():
        np.testing.assert_array_equal(ticket.masks[name], mask)
    with open(two / "result.json") as f, open(one / "result.json") as f_1:
        got, want = json.load(f), json.load(f_1)
    got, want = got["ticket"]["ticket_training"], want["ticket"]["ticket_training"]
    assert got["test"] == pytest.approx(want["test"], abs=1e-5)
    assert got["final"] == pytest.approx(want["final"], abs=1e-5)
    with np.load(multi / "gradual.npz") as got, np.load(single / "gradual.npz") as want:
        assert sorted(got.files) == sorted(want.files)
        for key in want.files:
            if want[key].dtype == bool:
                np.testing.assert_array_equal(got[key], want[key])
            else:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
