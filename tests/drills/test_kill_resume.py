"""Kill drills: the CLI, run on tiny digits configs, is SIGKILLed at chosen
points (``KERAS_LOTTERY_DRILL_KILL=N[:after]``: at its N-th atomic write, before
or after the rename, see ``keras_lottery._io``), then run again to the end; the
run folder must equal an uninterrupted run's bit for bit (every array of every
.npz; every JSON value but wall times) and hold no temporary file.

Marked ``drills``: ``make drills`` runs them all; ``make test`` runs the one
not marked ``slow`` (docs/reliability.md has the figures).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_lottery.config import load_config
from keras_lottery.manifest import MANIFEST, verify_phase
from keras_lottery.runs import runner

pytestmark = pytest.mark.drills

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IMP_YAML = """
data: {name: digits, validation_size: 180, train_size: 300}
model: {name: lenet_300_100, options: {hidden: [8, 4]}}
training: {batch_size: 100, duration: 2ep, learning_rate: 0.01}
pruning: {fraction: 0.5, rounds: 2, rewind: 1it, layer_fractions: {output: 0.25}}
baselines: [random_reinit]
"""

CS_YAML = """
method: cs
data: {name: digits, validation_size: 180, train_size: 300}
model: {name: lenet_300_100, options: {hidden: [8, 4]}}
training: {optimizer: sgd, learning_rate: 0.05, batch_size: 100, duration: 2ep}
cs: {rounds: 2, rewind: 1ep, layers: all}
baselines: [random_reinit]
"""

# Atomic writes of the IMP run (see _io's counter): 1 identity.json,
# 2 config.yaml, 3 rewind_state.npz, 4-7 round 0 (trained, ticket, manifest,
# record), 8-11 round 1, 12-15 round 2, 16 report.txt, 17 the plot, 18 result.json.
IMP_KILLS = ["3", "5", "6:after", "7", "7:after", "9", "11:after", "14", "17", "18"]
# CS: 1 identity, 2 config, 3-7 search 0 (rewind_state, state, optimizer,
# manifest, record), 8-11 search 1, 12-15 the ticket, then report, plot, result.
CS_KILLS = ["4", "7:after", "10", "13", "15", "18"]
# A branch: 1 its manifest, 2 its record.json, 3 report.txt, 4 the plot.
BRANCH_KILLS = ["1", "2", "2:after"]
BRANCH = ["--round", "1", "--kind", "shuffle_masks"]


def cli(*args, kill=None, check=True, backend="tensorflow"):
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        KERAS_BACKEND=backend,
        TF_NUM_INTRAOP_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    env.pop("KERAS_LOTTERY_DRILL_KILL", None)
    if kill:
        env["KERAS_LOTTERY_DRILL_KILL"] = kill
    done = subprocess.run(
        [sys.executable, "-m", "keras_lottery.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if kill:
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    elif check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def run_folder(out):
    (folder,) = [p for p in os.listdir(out) if p.startswith(("imp_", "cs_"))]
    return os.path.join(out, folder)


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "wall_time"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def snapshot(directory) -> dict:
    """What must be identical: every array of every .npz (bytes, dtype, shape)
    and every JSON file without wall times; the names of all files."""
    out = {}
    for base, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            key = os.path.relpath(path, directory)
            assert not name.startswith(".tmp-"), f"leftover {key}"
            if name.endswith(".npz"):
                with np.load(path) as data:
                    out[key] = {
                        k: (data[k].dtype.str, data[k].shape, data[k].tobytes())
                        for k in data.files
                    }
            elif name.endswith(".json") and name != MANIFEST:
                with open(path) as handle:
                    out[key] = _without_times(json.load(handle))
            elif name == MANIFEST:
                assert verify_phase(base)  # each manifest matches its files
                out[key] = "manifest"
            else:
                out[key] = "present"
    return out


def reference(tmp_path_factory, yaml_text) -> tuple[str, str, dict]:
    """A run never killed: its config, its folder and the folder's snapshot."""
    folder = tmp_path_factory.mktemp("reference")
    config = folder / "config.yaml"
    config.write_text(yaml_text)
    cli("run", str(config), "--out", str(folder / "runs"))
    directory = run_folder(folder / "runs")
    return str(config), directory, snapshot(directory)


@pytest.fixture(scope="module")
def imp_reference(tmp_path_factory):
    return reference(tmp_path_factory, IMP_YAML)


@pytest.fixture(scope="module")
def branch_reference(imp_reference, tmp_path_factory):
    """The IMP reference's folder copied, with the branch run once, unkilled."""
    directory = str(tmp_path_factory.mktemp("branch") / "run")
    shutil.copytree(imp_reference[1], directory)
    cli("branch", directory, *BRANCH)
    return directory, snapshot(directory)


@pytest.fixture(scope="module")
def cs_reference(tmp_path_factory):
    return reference(tmp_path_factory, CS_YAML)


def kill_then_resume(config, out, kill):
    cli("run", config, "--out", str(out), kill=kill)
    cli("run", config, "--out", str(out))
    return run_folder(out)


@pytest.mark.slow
@pytest.mark.parametrize("kill", IMP_KILLS)
def test_imp_killed_and_resumed_equals_an_uninterrupted_run(
    imp_reference, tmp_path, kill
):
    config, _, expected = imp_reference
    assert snapshot(kill_then_resume(config, tmp_path, kill)) == expected


@pytest.mark.slow
@pytest.mark.parametrize("kill", CS_KILLS)
def test_cs_killed_and_resumed_equals_an_uninterrupted_run(
    cs_reference, tmp_path, kill
):
    config, _, expected = cs_reference
    assert snapshot(kill_then_resume(config, tmp_path, kill)) == expected


@pytest.mark.slow
@pytest.mark.parametrize("kill", BRANCH_KILLS)
def test_branch_killed_and_resumed_equals_an_uninterrupted_one(
    imp_reference, branch_reference, tmp_path, kill
):
    directory = str(tmp_path / "run")
    shutil.copytree(imp_reference[1], directory)
    cli("branch", directory, *BRANCH, kill=kill)
    cli("branch", directory, *BRANCH)
    assert snapshot(directory) == branch_reference[1]


@pytest.mark.slow
def test_a_run_killed_under_tensorflow_is_not_resumed_under_jax(tmp_path):
    pytest.importorskip("jax")
    config = tmp_path / "config.yaml"
    config.write_text(IMP_YAML)
    out = str(tmp_path / "runs")
    cli("run", str(config), "--out", out, kill="7:after")  # round 0 finished
    done = cli("run", str(config), "--out", out, check=False, backend="jax")
    assert done.returncode == 2
    assert "was started with the tensorflow backend; this process uses jax" in (
        done.stderr
    )
    assert not os.path.exists(os.path.join(run_folder(out), "round_001"))


def test_a_kill_in_round_zero_resumes_to_an_uninterrupted_run(tmp_path):
    """The fast drill of ``make test``: a CLI process killed while writing
    round 0's ticket (a ``.tmp-*`` file left behind) is resumed, and a run
    that was never killed is made, in this process (no TensorFlow import)."""
    config = tmp_path / "config.yaml"
    config.write_text(IMP_YAML.replace("rounds: 2", "rounds: 1"))
    cli("run", str(config), "--out", str(tmp_path / "killed"), kill="5")
    directory = run_folder(tmp_path / "killed")
    left = os.listdir(os.path.join(directory, "round_000"))
    assert any(n.startswith(".tmp-") for n in left), left
    assert not os.path.exists(os.path.join(directory, "round_000", "record.json"))
    for out in ("killed", "reference"):
        keras.backend.clear_session()  # layer names as in a fresh process
        runner.run(load_config(str(config)), out=str(tmp_path / out), verbose=0)
    assert snapshot(directory) == snapshot(run_folder(tmp_path / "reference"))
