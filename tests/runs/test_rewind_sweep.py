"""Rewinding sweep: one IMP run per rewind point sharing the dense round."""

import json

import numpy as np
import pytest

from keras_lottery import cli
from keras_lottery.config import load_config
from keras_lottery.runs import branches, plots, runner
from keras_lottery.runs.rewind_sweep import (
    format_sweep_table,
    parse_rewinds,
    sweep_name,
    with_rewind,
)
from tests.conftest import write_tiny_config

SPLITS = ("test", "train")
PLOTS = (
    "accuracy_vs_rewind.png",
    "instability_vs_rewind.png",
    "interpolation_curves.png",
)


@pytest.mark.slow  # about 20 s on 2 shared cores; the fast test is below
def test_rewind_sweep_cli_end_to_end(tmp_path, capsys):
    config = write_tiny_config(tmp_path, baselines="[random_reinit]")
    out = tmp_path / "runs"
    args = ["rewind-sweep", str(config), "--rewinds", "0,2it", "--round", "1"]
    args += ["--pairs", "1", "--points", "3", "--set", "pruning.rounds=1"]
    args += ["--set", "training.duration=1ep"]  # 5 steps: k = 2it is inside
    assert cli.main(args + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dense round 0 shared from" in printed

    (folder,) = list(out.glob("sweep_*"))
    for name in (
        "sweep.json",
        "sweep.txt",
        "accuracy_vs_rewind.png",
        "instability_vs_rewind.png",
        "interpolation_curves.png",
    ):
        assert (folder / name).exists(), name
    sweep = json.loads((folder / "sweep.json").read_text())
    rows = sweep["rows"]
    assert [r["rewind"] for r in rows] == ["0it", "2it"]
    assert [r["rewind_iterations"] for r in rows] == [0, 2]
    for row in rows:
        assert isinstance(row["matching"], bool)
        assert row["matching"] == (
            row["ticket_accuracy"] >= row["dense_accuracy"] - 0.002
        )
        assert row["random_reinit_accuracy"] is not None  # from IMP's records
        assert row["random_prune_accuracy"] is not None  # trained as a branch
        assert set(row["instability"]) == {"test", "train"}
        assert len(row["mean_curves"]["test"]["alphas"]) == 3
    table = (folder / "sweep.txt").read_text().splitlines()
    assert table[0].split()[:2] == ["k", "remaining"] and len(table) >= 3
    assert table[1].split()[0] == "0it" and table[2].split()[0] == "2it"

    overrides = ["pruning.rounds=1", "stability.pairs=1", "training.duration=1ep"]
    base = load_config(config, overrides)
    dirs = [
        runner.run_dir_for(with_rewind(base, s), str(out))
        for s in parse_rewinds("0,2it")
    ]
    assert folder.name == sweep_name(base, parse_rewinds("0,2it"), 1)
    shared = [json.loads(open(f"{d}/round_000/record.json").read()) for d in dirs]
    assert shared[0] == shared[1]  # the dense round, trained once
    states = [np.load(f"{d}/rewind_state.npz") for d in dirs]
    assert not np.array_equal(states[0]["arr_0"], states[1]["arr_0"])  # k differs
    for d in dirs:  # instability and the branch control live in each run
        assert (
            tmp_path / d / "instability" / "round_001" / "instability.json"
        ).exists()
        assert list((tmp_path / d / "branches").glob("round_001/random_prune/*"))

    # That the shared round changes no result: tests/runs/test_sharing.py.

    # Re-running trains nothing new and rewrites the same table.
    assert cli.main(args + ["--out", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out
    assert json.loads((folder / "sweep.json").read_text())["rows"] == rows


def _stub_instability(calls):
    """``branches.run_instability`` without training copies: the summary an
    analysis saves, with a barrier that grows with the round's rewind step."""

    def run_instability(run_dir, round, overrides=(), verbose=1, **settings):
        saved = branches.load_round(run_dir, round)
        calls.append((run_dir, round, settings["pairs"], settings["points"]))
        barrier = 0.01 * (saved.start_step + 1)
        stats = {"mean": barrier, "std": 0.0, "min": barrier, "max": barrier}
        curve = {"alphas": [0.0, 0.5, 1.0], "mean": [0.1, 0.1 + barrier, 0.1]}
        return {
            "round": round,
            "start_step": saved.start_step,
            "summary": {s: dict(stats, stable=barrier < 0.02) for s in SPLITS},
            "mean_curves": {split: curve for split in SPLITS},
            "pairs": [{}] * settings["pairs"],
        }

    return run_instability


def test_rewind_sweep_orchestrates_runs_branches_and_analyses(
    tmp_path, capsys, monkeypatch
):
    calls = []
    monkeypatch.setattr(branches, "run_instability", _stub_instability(calls))
    config = write_tiny_config(tmp_path, baselines="[random_reinit]")
    out = tmp_path / "runs"
    args = ["rewind-sweep", str(config), "--rewinds", "0,2it", "--round", "1"]
    args += ["--pairs", "1", "--points", "3", "--set", "pruning.rounds=1"]
    args += ["--set", "training.duration=1ep", "--out", str(out)]
    assert cli.main(args) == 0
    assert "dense round 0 shared from" in capsys.readouterr().out
    overrides = ["pruning.rounds=1", "stability.pairs=1", "stability.points=3"]
    base = load_config(config, overrides + ["training.duration=1ep"])
    steps = parse_rewinds("0,2it")
    dirs = [runner.run_dir_for(with_rewind(base, s), str(out)) for s in steps]
    assert calls == [(d, 1, 1, 3) for d in dirs]  # the sweep's stability settings
    (folder,) = list(out.glob("sweep_*"))
    assert folder.name == sweep_name(base, steps, 1)
    rows = json.loads((folder / "sweep.json").read_text())["rows"]
    assert [(r["rewind"], r["rewind_iterations"]) for r in rows] == [
        ("0it", 0),
        ("2it", 2),
    ]
    assert [r["instability"]["test"]["mean"] for r in rows] == [0.01, 0.03]
    for row, d in zip(rows, dirs, strict=True):
        rounds = {
            r: json.loads(open(f"{d}/round_{r:03d}/record.json").read()) for r in (0, 1)
        }
        ticket = rounds[1]["ticket"]["test"]["accuracy"]
        assert row["ticket_accuracy"] == ticket
        assert row["dense_accuracy"] == rounds[0]["ticket"]["test"]["accuracy"]
        assert row["fraction_remaining"] == rounds[1]["fraction_remaining"]
        own = rounds[1]["baselines"]["random_reinit"]["test"]["accuracy"]
        assert row["random_reinit_accuracy"] == own  # IMP trained it
        (branch,) = (tmp_path / d / "branches" / "round_001" / "random_prune").iterdir()
        record = json.loads((branch / "record.json").read_text())
        assert row["random_prune_accuracy"] == record["training"]["test"]["accuracy"]
    shared = [open(f"{d}/round_000/record.json").read() for d in dirs]
    assert shared[0] == shared[1]  # the dense round, trained once
    table = (folder / "sweep.txt").read_text().splitlines()
    assert [line.split()[0] for line in table[1:3]] == ["0it", "2it"]
    assert "3.00 ± 0.00 pp" in table[2]
    for name in PLOTS:
        assert (folder / name).stat().st_size > 1000, name
    assert cli.main(args) == 0  # re-running trains nothing new
    assert "already finished" in capsys.readouterr().out
    assert json.loads((folder / "sweep.json").read_text())["rows"] == rows


@pytest.mark.backend_neutral
def test_sweep_arguments_are_checked(tmp_path, capsys):
    config = write_tiny_config(tmp_path)
    args = ["rewind-sweep", str(config), "--rewinds", "0,2it", "--round", "5"]
    assert cli.main(args) == 2
    assert "pruning.rounds >= 5" in capsys.readouterr().err
    args = ["rewind-sweep", str(config), "--rewinds", "0,0it", "--round", "1"]
    assert cli.main(args) == 2
    assert "repeat" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one rewind"):
        parse_rewinds(" , ")


def _fake_row(rewind, barrier, dense=None):
    stats = {"mean": barrier, "std": 0.01, "min": 0, "max": 1, "stable": barrier < 0.02}
    curve = {"alphas": [0.0, 0.5, 1.0], "mean": [0.1, 0.1 + barrier, 0.1]}
    return {
        "rewind": rewind,
        "fraction_remaining": 0.2,
        "ticket_accuracy": 0.9,
        "dense_accuracy": 0.91,
        "matching_tolerance": 0.002,
        "matching": False,
        "random_reinit_accuracy": 0.85,
        "random_prune_accuracy": None,
        "instability": {"test": stats, "train": stats},
        "mean_curves": {"test": curve, "train": curve},
        "dense_instability": dense and {"test": dense, "train": dense},
    }


@pytest.mark.backend_neutral
def test_sweep_table_and_plots_show_the_dense_network_when_measured(tmp_path):
    rows = [_fake_row("0it", 0.05), _fake_row("500it", 0.01)]
    table = format_sweep_table(rows).splitlines()
    assert "dense instability" not in table[0]
    assert "5.00 ± 1.00 pp *" in table[1] and "1.00 ± 1.00 pp " in table[2] + " "
    dense = {"mean": 0.03, "std": 0.0, "min": 0, "max": 1, "stable": False}
    rows[1] = _fake_row("500it", 0.01, dense)
    table = format_sweep_table(rows).splitlines()
    assert table[0].endswith("dense instability test")
    assert table[1].endswith("-") and table[2].endswith("3.00 ± 0.00 pp *")
    plots.plot_sweep_instability(rows, tmp_path / "i.png", 0.02)
    plots.plot_sweep_accuracy(rows, tmp_path / "a.png")
    plots.plot_sweep_curves(rows, tmp_path / "c.png")
    assert all((tmp_path / f"{n}.png").stat().st_size > 1000 for n in "iac")
