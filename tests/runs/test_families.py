"""keras_lottery.runs.families: the family report of a sweep (rows, replicates
over seeds, controls trained later joined in)."""

import json

import numpy as np
import pytest

from keras_lottery.config import load_config
from keras_lottery.runs import families
from keras_lottery.runs.sweep import Setting


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
    groups = families.replicates(rows)
    assert [(g["group"], g["seeds"]) for g in groups] == [("k=0", 2), ("k=1", 1)]
    first = groups[0]["points"]
    assert first[0]["accuracy"]["mean"] == pytest.approx(0.91)
    assert first[1]["accuracy"]["std"] == pytest.approx(np.std([0.92, 0.94], ddof=1))
    assert first[1]["controls"]["random_reinit"]["mean"] == pytest.approx(0.86)
    assert groups[1]["points"][1]["accuracy"] == {"mean": 0.96, "std": 0.0, "n": 1}
    table = families.format_replicates(groups)
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
            "ticket": {"epochs": 2, "final": {}, "test": {"accuracy": a}},
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
    config = load_config(tiny_config, [])
    settings = []
    for seed, reinit in ((0, 0.50), (1, 0.60)):
        run_dir = tmp_path / f"imp_seed{seed}"
        branches = {(2, "random_reinit", 0): reinit, (2, "random_prune", 0): 0.1}
        if seed == 0:
            branches[(2, "random_reinit", 1)] = 0.55  # a second replicate
        _finished_imp_run(run_dir, seed, [0.9, 0.92, 0.91], branches)
        settings.append(Setting((f"seed={seed}",), config, str(run_dir)))
    rows = families.collect(settings)
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
    (group,) = families.replicates(rows)
    reinit = group["points"][2]["controls"]["random_reinit"]
    assert reinit["mean"] == pytest.approx(0.55) and reinit["n"] == 2
    assert "random_reinit" not in group["points"][1]["controls"]
    table = families.format_replicates([group])
    assert "0.5500 ± 0.0707" in table  # both seeds' branches
    assert "0.5500 ± 0.0000 (n=1)" in table  # replicate seed 1 of run seed 0 only
