"""keras_lottery.runs.tuner_sweep: a grid sweep as a Keras Tuner search, in one
process or as a chief and workers (Keras Tuner's distributed mode)."""

import json
import os
import re
import signal
import subprocess
import sys

import keras_tuner
import pytest

from keras_lottery import cli, local_cluster
from keras_lottery.config import ConfigError
from keras_lottery.runs import sweep, tuner_sweep
from keras_lottery.runs.tuning import TrialConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRID = ["cs.mask_initial_value=[-0.5, 0.5]", "seed=[0, 1]"]


def test_role_from_keras_tuner_variables():
    ip, port, tuner = (
        "KERASTUNER_ORACLE_IP",
        "KERASTUNER_ORACLE_PORT",
        "KERASTUNER_TUNER_ID",
    )
    assert tuner_sweep.tuner_role({}) == "single"
    assert tuner_sweep.tuner_role({tuner: "chief"}) == "single"
    env = {ip: "127.0.0.1", port: "8000", tuner: "chief"}
    assert tuner_sweep.tuner_role(env) == "chief"
    assert tuner_sweep.tuner_role(dict(env, **{tuner: "worker1"})) == "worker"
    with pytest.raises(ConfigError, match="KERASTUNER_ORACLE_PORT not set"):
        tuner_sweep.tuner_role({ip: "127.0.0.1", tuner: "worker1"})


def test_trials_map_to_grid_settings(cs_mlp_config, tmp_path):
    grid = {"cs.mask_initial_value": [-0.5, 0.5], "model.options": [{"hidden": [4]}]}
    settings = sweep.expand(cs_mlp_config, grid, out=str(tmp_path))
    hp = tuner_sweep.search_space(grid)
    assert hp.values == {
        "cs.mask_initial_value": "-0.5",
        "model.options": '{"hidden": [4]}',
    }
    tuner = tuner_sweep.SweepTuner(settings, grid, str(tmp_path / "t"), "p")
    assert tuner.oracle.objective.name == "val_accuracy"
    hp.values["cs.mask_initial_value"] = "0.5"
    assert tuner.setting_of(hp) is settings[1]
    hp.values["cs.mask_initial_value"] = "0.25"
    with pytest.raises(TrialConfigError, match="not in this process's grid"):
        tuner.setting_of(hp)
    other = keras_tuner.HyperParameters()
    other.Choice("seed", ["0"])
    with pytest.raises(TrialConfigError, match=r"grid keys \['seed'\] differ"):
        tuner.setting_of(other)


def test_jobs_do_not_go_with_tuner(cs_mlp_config, tmp_path, capsys):
    args = ["sweep", str(cs_mlp_config), "--grid", "seed=[0, 1]", "--tuner"]
    assert cli.main(args + ["--jobs", "2"]) == 2
    assert "start more Keras Tuner workers" in capsys.readouterr().err
    assert cli.main(args[:-1] + ["--tuner-dir", str(tmp_path)]) == 2
    assert "--tuner-dir goes with --tuner" in capsys.readouterr().err


def _start(config, out, tuner_id, port, log, grid=None, kill=None):
    kill = {"KERAS_LOTTERY_DRILL_KILL": kill} if kill else {}
    env = local_cluster.process_env(
        {k: v for k, v in os.environ.items() if k != "KERAS_LOTTERY_DRILL_KILL"},
        tuner=local_cluster.tuner_variables(tuner_id, port),
        pythonpath=ROOT,
        **kill,
    )
    command = [sys.executable, "-m", "keras_lottery.cli", "sweep", str(config)]
    command += ["--out", str(out), "--tuner"]
    command += grid or [a for item in GRID for a in ("--grid", item)]
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(out.parent)
    )


def _sweep_dir(out):
    (directory,) = [p for p in out.iterdir() if p.name.startswith("sweep_")]
    return directory


def test_one_process_search_gives_the_jobs_sweep_report(
    cs_mlp_config, tmp_path, capsys, monkeypatch
):
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "runs"
    args = ["sweep", str(cs_mlp_config), "--out", str(out)]
    args += ["--grid", "cs.mask_initial_value=[-0.5, 0.5]"]

    def fail(config, **kwargs):
        raise RuntimeError(f"s0={config.cs.mask_initial_value} broke")

    with monkeypatch.context() as patch:
        patch.setattr(tuner_sweep.runner, "run", fail)
        assert cli.main(args + ["--tuner"]) == 2  # every setting failed
    printed = capsys.readouterr()
    assert "2 sweep setting(s) failed" in printed.err
    assert "s0=0.5 broke" in printed.out
    assert "not finished" in (_sweep_dir(out) / "sweep.txt").read_text()
    assert not (_sweep_dir(out) / "tuner").exists()  # set aside: retried below
    assert (_sweep_dir(out) / "tuner.failed").is_dir()
    assert cli.main(args + ["--tuner"]) == 0
    printed = capsys.readouterr().out
    assert len(re.findall(r"tuner tuner0: trial \d+ runs", printed)) == 2
    directory = _sweep_dir(out)
    trials = sorted((directory / "tuner").glob("trial_*/trial.json"))
    assert [json.loads(t.read_text())["status"] for t in trials] == ["COMPLETED"] * 2
    rows = json.loads((directory / "sweep.json").read_text())["settings"]
    sparse, dense = (r["points"][0]["weights_remaining"] for r in rows)
    assert sparse < dense and all(r["epochs"] == 4 for r in rows)
    report = (directory / "sweep.txt").read_text()

    def no_process(*args, **kwargs):
        raise AssertionError("a finished setting was run again")

    monkeypatch.setattr(sweep.subprocess, "call", no_process)
    assert cli.main(args) == 0  # the --jobs sweep finds every run folder finished
    assert (directory / "sweep.txt").read_text() == report
    assert cli.main(args + ["--tuner"]) == 0  # every setting is finished
    assert "runs cs." not in capsys.readouterr().out
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(local_cluster.free_ports(1)[0]))
    for tuner_id in ("worker0", "chief"):  # neither waits for the other
        monkeypatch.setenv("KERASTUNER_TUNER_ID", tuner_id)
        assert cli.main(args + ["--tuner"]) == 0
    assert (directory / "sweep.txt").read_text() == report


@pytest.mark.multiworker  # in make test: about 40 s on the quiet 2-core machine
def test_chief_and_two_workers_run_each_point_once(
    cs_mlp_config, tmp_path, monkeypatch
):
    # The --jobs processes below: this checkout, one op thread as the workers.
    monkeypatch.setenv("PYTHONPATH", ROOT)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    out = tmp_path / "tuner_runs"
    out.mkdir()
    port = local_cluster.free_ports(1)[0]
    logs = {
        name: open(tmp_path / f"{name}.log", "w+") for name in ("chief", "w0", "w1")
    }
    names = {"chief": "chief", "w0": "worker0", "w1": "worker1"}
    processes = {
        name: _start(cs_mlp_config, out, names[name], port, log)
        for name, log in logs.items()
    }
    try:
        args = ["sweep", str(cs_mlp_config), "--out", str(tmp_path / "jobs")]
        for item in GRID:
            args += ["--grid", item]
        assert cli.main(args + ["--jobs", "2"]) == 0  # two processes at a time
        local = _sweep_dir(tmp_path / "jobs")
        codes = {name: p.wait(timeout=300) for name, p in processes.items()}
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
    text = {}
    for name, log in logs.items():
        log.seek(0)
        text[name] = log.read()
        log.close()
    assert codes == {"chief": 0, "w0": 0, "w1": 0}, text
    ran = [
        m.group(1)
        for name in ("w0", "w1")
        for m in re.finditer(r"trial \d+ runs (.+?) in ", text[name])
    ]
    assert sorted(ran) == sorted(
        s.label for s in sweep.expand(cs_mlp_config, sweep.parse_grid(GRID))
    )  # every point once, by some worker
    assert not re.search(r"trial \d+ runs", text["chief"])  # the chief serves
    directory = _sweep_dir(out)
    assert directory.name == local.name
    trials = sorted((directory / "tuner").glob("trial_*/trial.json"))
    assert [json.loads(t.read_text())["status"] for t in trials] == ["COMPLETED"] * 4
    assert (directory / "sweep.txt").read_text() == (local / "sweep.txt").read_text()
    mine, theirs = (
        json.loads((d / "sweep.json").read_text()) for d in (directory, local)
    )
    for row in mine["settings"] + theirs["settings"]:
        row["run_dir"] = os.path.basename(row["run_dir"])
    assert mine == theirs
    assert len(mine["settings"]) == 4 and all(r["points"] for r in mine["settings"])
    assert "sweep folder" in text["chief"]


@pytest.mark.multiworker
@pytest.mark.slow
def test_a_killed_worker_restarted_under_its_id_resumes_its_trial(
    cs_mlp_config, tmp_path
):
    out = tmp_path / "runs"
    out.mkdir()
    port = local_cluster.free_ports(1)[0]
    grid = ["--grid", "cs.mask_initial_value=[-0.5, 0.5]"]
    logs = {n: open(tmp_path / f"{n}.log", "w+") for n in ("chief", "killed", "again")}
    # CS, one search round: write 9 is inside the ticket's phase (see the drills).
    chief = _start(cs_mlp_config, out, "chief", port, logs["chief"], grid)
    killed = again = None
    try:
        killed = _start(
            cs_mlp_config, out, "worker0", port, logs["killed"], grid, kill="9"
        )
        assert killed.wait(timeout=300) == -signal.SIGKILL
        again = _start(cs_mlp_config, out, "worker0", port, logs["again"], grid)
        assert again.wait(timeout=300) == 0
        assert chief.wait(timeout=120) == 0
    finally:
        for process in (chief, killed, again):
            if process is not None and process.poll() is None:
                process.kill()
    text = {}
    for name, log in logs.items():
        log.seek(0)
        text[name] = log.read()
        log.close()
    first = re.search(r"trial 0+ runs (.+?) in ", text["killed"]).group(1)
    assert re.search(r"trial 0+ runs (.+?) in ", text["again"]).group(1) == first
    assert "resuming CS after search round 0" in text["again"]
    directory = _sweep_dir(out)
    trials = sorted((directory / "tuner").glob("trial_*/trial.json"))
    assert [json.loads(t.read_text())["status"] for t in trials] == ["COMPLETED"] * 2
    rows = json.loads((directory / "sweep.json").read_text())["settings"]
    assert all(r["points"] for r in rows)
