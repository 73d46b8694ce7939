"""keras_lottery.runs.sweep: grids of settings run as separate run folders."""

import json
import os
import sys

import keras
import numpy as np
import pytest

from keras_lottery import cli
from keras_lottery.config import ConfigError
from keras_lottery.runs import runner, sweep
from keras_lottery.soft_masks import LOGITS


def test_parse_grid_and_errors():
    grid = sweep.parse_grid(["cs.mask_initial_value=[-0.1, 0.0]", "seed=[1, 2, 3]"])
    assert grid == {"cs.mask_initial_value": [-0.1, 0.0], "seed": [1, 2, 3]}
    with pytest.raises(ConfigError, match="non-empty YAML list"):
        sweep.parse_grid(["seed=1"])
    with pytest.raises(ConfigError, match="must look like key="):
        sweep.parse_grid(["seed"])
    with pytest.raises(ConfigError, match="at least one --grid"):
        sweep.parse_grid([])
    with pytest.raises(ConfigError, match="given twice"):
        sweep.parse_grid(["seed=[1]", "seed=[2]"])


def test_expand_is_a_validated_cartesian_product(cs_mlp_config, tmp_path):
    grid = {"cs.mask_initial_value": [-0.1, 0.1], "cs.penalty": [0.0, 1e-4]}
    settings = sweep.expand(cs_mlp_config, grid, out=str(tmp_path))
    assert [s.overrides for s in settings] == [
        ("cs.mask_initial_value=-0.1", "cs.penalty=0.0"),
        ("cs.mask_initial_value=-0.1", "cs.penalty=0.0001"),
        ("cs.mask_initial_value=0.1", "cs.penalty=0.0"),
        ("cs.mask_initial_value=0.1", "cs.penalty=0.0001"),
    ]
    assert len({s.run_dir for s in settings}) == 4
    assert settings[1].config.cs.penalty == 1e-4
    with pytest.raises(ConfigError, match="cs.mask_init"):
        sweep.expand(cs_mlp_config, {"cs.mask_init": [0.0]})
    with pytest.raises(ConfigError, match="same config"):
        sweep.expand(cs_mlp_config, {"seed": [0, 0]})


def _family_rows(directory):
    rows = json.loads((directory / "sweep.json").read_text())["settings"]
    assert [r["setting"] for r in rows] == [
        "cs.mask_initial_value=-0.5",
        "cs.mask_initial_value=0.5",
    ]
    sparse, dense = (r["points"][0]["weights_remaining"] for r in rows)
    assert sparse < dense  # negative s0 gives the sparser ticket
    assert all(r["method"] == "cs" and r["epochs"] == 4 for r in rows)
    assert (directory / "sweep.png").exists() and (directory / "sweep.txt").exists()
    return rows


def test_cs_family_from_one_start(cs_mlp_config, tmp_path, capsys, monkeypatch):
    # Each setting is a `keras-lottery run` command; here it runs in this process
    # (the slow test below starts the processes).
    commands = []

    def in_process(command, stdout, stderr, env):
        assert command[:4] == [sys.executable, "-m", "keras_lottery.cli", "run"]
        assert env["TF_NUM_INTEROP_THREADS"] == "1"
        commands.append(command)
        return cli.main(command[3:])

    monkeypatch.setattr(sweep.subprocess, "call", in_process)
    out = tmp_path / "runs"
    args = ["sweep", str(cs_mlp_config), "--out", str(out)]
    args += ["--grid", "cs.mask_initial_value=[-0.5, 0.5]"]
    assert cli.main(args) == 0
    assert [c[c.index("--set") + 1] for c in commands] == [
        "cs.mask_initial_value=-0.5",
        "cs.mask_initial_value=0.5",
    ]
    (directory,) = [p for p in out.iterdir() if p.name.startswith("sweep_")]
    rows = _family_rows(directory)
    settings = sweep.expand(
        cs_mlp_config, {"cs.mask_initial_value": [-0.5, 0.5]}, out=str(out)
    )
    assert [r["run_dir"] for r in rows] == [s.run_dir for s in settings]
    # One starting network (the same seed): only the mask logits differ.
    first, second = (runner.prepare(s.config)[1] for s in settings)
    logits = 0
    for a, b in zip(first.weights, second.weights, strict=True):
        assert a.path == b.path
        same = np.array_equal(*map(keras.ops.convert_to_numpy, (a, b)))
        logits += LOGITS in a.path
        assert same == (LOGITS not in a.path), a.path
    assert logits == 3  # one per layer (cs.layers: all)
    capsys.readouterr()
    assert cli.main(args) == 0  # finished settings are skipped
    assert "already finished" in capsys.readouterr().out
    assert len(commands) == 2


@pytest.mark.slow
def test_parallel_cs_family_in_processes(cs_mlp_config, tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["sweep", str(cs_mlp_config), "--out", str(out), "--jobs", "2"]
    args += ["--grid", "cs.mask_initial_value=[-0.5, 0.5]"]
    assert cli.main(args) == 0
    (directory,) = [p for p in out.iterdir() if p.name.startswith("sweep_")]
    rows = _family_rows(directory)
    assert all(os.path.exists(os.path.join(r["run_dir"], "ticket.npz")) for r in rows)
    log_times = {p: p.stat().st_mtime for p in (directory / "logs").iterdir()}
    assert len(log_times) == 2
    capsys.readouterr()
    assert cli.main(args) == 0  # finished settings are skipped
    assert "already finished" in capsys.readouterr().out
    assert {p: p.stat().st_mtime for p in (directory / "logs").iterdir()} == log_times


def test_failed_settings_are_named_and_the_rest_reported(
    cs_mlp_config, tmp_path, monkeypatch
):
    out = tmp_path / "runs"
    monkeypatch.setattr(sweep.sys, "executable", "false")  # every process fails
    grid = {"cs.mask_initial_value": [0.0, 0.1]}
    with pytest.raises(RuntimeError, match=r"2 sweep setting\(s\) failed: \["):
        sweep.run_sweep(cs_mlp_config, grid, out=str(out), verbose=0)
    (directory,) = [p for p in out.iterdir() if p.name.startswith("sweep_")]
    assert len(list((directory / "logs").iterdir())) == 2
    assert "not finished" in (directory / "sweep.txt").read_text()
    with pytest.raises(ValueError, match="jobs must be an int >= 1"):
        sweep.run_sweep(cs_mlp_config, grid, out=str(out), jobs=0)
