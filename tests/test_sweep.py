import json
import os

import numpy as np
import pytest

from keras_lottery import cli, sweep
from keras_lottery.config import ConfigError


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


def test_parallel_cs_family_from_one_start(cs_mlp_config, tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["sweep", str(cs_mlp_config), "--out", str(out), "--jobs", "2"]
    args += ["--grid", "cs.mask_initial_value=[-0.5, 0.5]"]
    assert cli.main(args) == 0
    (directory,) = [p for p in out.iterdir() if p.name.startswith("sweep_")]
    rows = json.loads((directory / "sweep.json").read_text())["settings"]
    assert [r["setting"] for r in rows] == [
        "cs.mask_initial_value=-0.5",
        "cs.mask_initial_value=0.5",
    ]
    sparse, dense = (r["points"][0]["weights_remaining"] for r in rows)
    assert sparse < dense  # negative s0 gives the sparser ticket
    assert all(r["method"] == "cs" and r["epochs"] == 4 for r in rows)
    assert (directory / "sweep.png").exists() and (directory / "sweep.txt").exists()
    # The two runs started from the same network: their rewind states share the
    # weights that the soft masks do not touch (the seed is the same).
    first, second = (np.load(os.path.join(r["run_dir"], "ticket.npz")) for r in rows)
    assert first["weight_1"].shape == second["weight_1"].shape
    log_times = {p: p.stat().st_mtime for p in (directory / "logs").iterdir()}
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


def _imp_row(seed, group, accuracies, reinit):
    return {
        "setting": f"{group}, seed={seed}",
        "group": group,
        "method": "imp",
        "epochs": 4,
        "points": [
            {"weights_remaining": w, "accuracy": a, "controls": c}
            for w, a, c in zip(
                [1.0, 0.8],
                accuracies,
                [{}, {"random_reinit": reinit}],
                strict=True,
            )
        ],
    }


def test_replicates_average_over_seeds_per_group():
    rows = [
        _imp_row(0, "k=0", [0.90, 0.92], 0.85),
        _imp_row(1, "k=0", [0.92, 0.94], 0.87),
        _imp_row(0, "k=1", [0.95, 0.96], 0.80),
        {"setting": "k=1, seed=1", "group": "k=1", "points": []},  # unfinished
    ]
    groups = sweep.replicates(rows)
    assert [(g["group"], g["seeds"]) for g in groups] == [("k=0", 2), ("k=1", 1)]
    first = groups[0]["points"]
    assert first[0]["accuracy"]["mean"] == pytest.approx(0.91)
    assert first[1]["accuracy"]["std"] == pytest.approx(np.std([0.92, 0.94], ddof=1))
    assert first[1]["controls"]["random_reinit"]["mean"] == pytest.approx(0.86)
    assert groups[1]["points"][1]["accuracy"] == {"mean": 0.96, "std": 0.0, "n": 1}
    table = sweep.format_replicates(groups)
    assert "k=0: mean ± std over 2 seed(s)" in table
    assert "0.9300 ± 0.0141" in table and "80.00% ± 0.00%" in table


def _write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _finished_imp_run(run_dir, seed, accuracies, branches):
    """A run folder as IMP leaves it (result.json) plus ``keras-lottery branch``
    records ``{(round, kind, branch_seed): accuracy}``."""
    rounds = [
        {
            "round": i,
            "fraction_remaining": 0.8**i,
            "ticket": {"epochs": 2, "test": {"accuracy": a}},
            "baselines": {"random_prune": {"test": {"accuracy": a - 0.2}}} if i else {},
        }
        for i, a in enumerate(accuracies)
    ]
    _write_json(
        run_dir / "result.json", {"method": "imp", "seed": seed, "rounds": rounds}
    )
    for (round, kind, branch_seed), accuracy in branches.items():
        _write_json(
            run_dir
            / "branches"
            / f"round_{round:03d}"
            / kind
            / f"seed_{branch_seed}"
            / "record.json",
            {
                "kind": kind,
                "seed": branch_seed,
                "round": round,
                "training": {"test": {"accuracy": accuracy}},
            },
        )


def test_sweep_report_joins_controls_trained_later_as_branches(tiny_config, tmp_path):
    config = sweep.load_config(tiny_config, [])
    settings = []
    for seed, reinit in ((0, 0.50), (1, 0.60)):
        run_dir = tmp_path / f"imp_seed{seed}"
        branches = {(2, "random_reinit", 0): reinit, (2, "random_prune", 0): 0.1}
        if seed == 0:
            branches[(2, "random_reinit", 1)] = 0.55  # a second replicate
        _finished_imp_run(run_dir, seed, [0.9, 0.92, 0.91], branches)
        settings.append(sweep.Setting((f"seed={seed}",), config, str(run_dir)))
    rows = sweep.collect(settings)
    last = rows[0]["points"][2]["controls"]
    # IMP's own random_prune keeps its name; the later one is marked as a branch.
    assert last == pytest.approx(
        {
            "random_prune": 0.71,
            "random_prune_branch": 0.1,
            "random_reinit": 0.50,
            "random_reinit_s1": 0.55,
        }
    )
    assert rows[1]["points"][1]["controls"] == pytest.approx({"random_prune": 0.72})
    (group,) = sweep.replicates(rows)
    reinit = group["points"][2]["controls"]["random_reinit"]
    assert reinit["mean"] == pytest.approx(0.55) and reinit["n"] == 2
    assert "random_reinit" not in group["points"][1]["controls"]
    table = sweep.format_replicates([group])
    assert "0.5500 ± 0.0707" in table  # both seeds' branches
    assert "0.5500 ± 0.0000 (n=1)" in table  # replicate seed 1 of run seed 0 only
