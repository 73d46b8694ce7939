"""keras_lottery.runs.branches: instability of a saved round, controls trained
later, and both joined to the run's report."""

import json

import keras
import numpy as np
import pytest

from keras_lottery import cli, controls, pruning
from keras_lottery.config import load_config
from keras_lottery.recipes import Recipe
from keras_lottery.runs import branches
from keras_lottery.ticket import Ticket


@pytest.fixture(scope="module")
def run_dir(module_imp_run):
    """A finished tiny IMP run (1 round, rewind 3it, random_reinit control) that
    the tests of this module add branches to, in order."""
    return module_imp_run


def test_instability_cli_writes_results_and_reruns_without_training(
    run_dir, capsys, monkeypatch
):
    args = ["instability", str(run_dir), "--round", "1", "--pairs", "1"]
    assert cli.main(args + ["--points", "4", "--threshold", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "test: instability" in printed and "train: instability" in printed
    folder = run_dir / "instability" / "round_001"
    for name in (
        "instability.json",
        "instability.png",
        "copies/copy_seed1.npz",
        "copies/copy_seed2.json",
        "copies/pair_s1_s2.json",
    ):
        assert (folder / name).exists(), name
    summary = json.loads((folder / "instability.json").read_text())
    assert summary["round"] == 1 and summary["start_step"] == 3
    assert summary["rewind"] == "3it" and summary["threshold"] == 0.05
    assert len(summary["mean_curves"]["test"]["alphas"]) == 4
    assert set(summary["summary"]) == {"test", "train"}
    record = json.loads((run_dir / "round_001" / "record.json").read_text())
    assert summary["fraction_remaining"] == record["fraction_remaining"]
    copy = json.loads((folder / "copies" / "copy_seed1.json").read_text())
    # Trained from step 3 to the end: 2 epochs of 5 steps.
    assert copy["summary"]["steps"] == 10 - 3

    def no_training(*args, **kwargs):
        raise AssertionError("a finished analysis must not train again")

    copies = sorted((folder / "copies").iterdir())
    stamps = [p.stat().st_mtime_ns for p in copies]
    monkeypatch.setattr(keras.Model, "fit", no_training)
    assert cli.main(args + ["--points", "4"]) == 0
    assert [p.stat().st_mtime_ns for p in copies] == stamps
    assert cli.main(["report", str(run_dir)]) == 0
    assert (run_dir / "instability_vs_weights.png").exists()
    header, dense, first = capsys.readouterr().out.splitlines()[-3:]
    assert header.endswith("instability (test)")
    assert first.endswith(" pp") and dense.endswith("-")  # round 1 analyzed only


@pytest.mark.backend_neutral
def test_instability_errors_exit_2(run_dir, capsys):
    assert cli.main(["instability", str(run_dir), "--round", "7"]) == 2
    assert "finished rounds: [0, 1]" in capsys.readouterr().err
    args = ["instability", str(run_dir), "--round", "1", "--points", "1"]
    assert cli.main(args) == 2
    assert "stability.points" in capsys.readouterr().err
    args = ["instability", str(run_dir), "--round", "1", "--set", "seed=3"]
    assert cli.main(args) == 2
    assert "Only stability.* settings" in capsys.readouterr().err


@pytest.mark.backend_neutral
def test_control_models_keep_what_they_should(run_dir):
    ticket = Ticket.load(run_dir / "round_001" / "ticket.npz")
    recipe = Recipe(load_config(run_dir / "config.yaml"))
    rewound = _ticket_kernels(ticket)
    for kind in controls.names():
        if controls.get(kind).elastic_only:  # tests/test_elastic.py
            continue
        model = controls.control_model(kind, ticket, recipe.build_model, 5)
        masks = pruning.get_masks(model)
        for name, mask in ticket.masks.items():
            assert masks[name].sum() == mask.sum(), (kind, name)  # counts kept
        same = all(np.array_equal(masks[n], m) for n, m in ticket.masks.items())
        assert same == (kind == "random_reinit"), kind
        for layer in pruning.masked_layers(model):
            kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
            mask = masks[layer.name]
            assert np.all(kernel[~mask] == 0)
            if kind == "random_reinit":  # fresh initialization
                assert not np.allclose(kernel[mask], rewound[layer.name][mask])
            else:  # the rewound weights under the new masks
                np.testing.assert_array_equal(kernel[mask], rewound[layer.name][mask])
    first = controls.control_masks("shuffle_masks", ticket.masks, 1)
    again = controls.control_masks("shuffle_masks", ticket.masks, 1)
    other = controls.control_masks("shuffle_masks", ticket.masks, 2)
    assert all(np.array_equal(first[n], again[n]) for n in first)
    assert not all(np.array_equal(first[n], other[n]) for n in first)
    with pytest.raises(ValueError, match="Unknown control 'shuffle'"):
        controls.control_masks("shuffle", ticket.masks, 1)


def test_branch_cli_trains_controls_and_joins_the_report(run_dir, capsys):
    for kind in ("shuffle_masks", "random_reinit"):
        args = ["branch", str(run_dir), "--round", "1", "--kind", kind]
        assert cli.main(args) == 0
    out = capsys.readouterr().out
    header = [line for line in out.splitlines() if line.lstrip().startswith("round")]
    assert "shuffle_masks accuracy" in header[-1]
    assert "random_reinit_branch accuracy" in header[-1]  # IMP trained its own
    path = run_dir / "branches" / "round_001" / "shuffle_masks" / "seed_0"
    record = json.loads((path / "record.json").read_text())
    assert record["start_step"] == 3 and record["training"]["steps"] == 7
    accuracy = record["training"]["test"]["accuracy"]
    mtime = (path / "record.json").stat().st_mtime_ns
    args = ["branch", str(run_dir), "--round", "1", "--kind", "shuffle_masks"]
    assert cli.main(args) == 0
    assert (path / "record.json").stat().st_mtime_ns == mtime  # not retrained
    assert "nothing to do" in capsys.readouterr().out
    report = (run_dir / "report.txt").read_text().splitlines()
    assert len(report) == 3 and "shuffle_masks accuracy" in report[0]
    assert report[2].split()[0] == "1" and report[1].count("-") >= 2  # round 0: none
    assert f"{accuracy:.4f}" in report[2].split()  # the branch's own record
    args = ["branch", str(run_dir), "--round", "0", "--kind", "random_prune"]
    assert cli.main(args) == 2
    assert "pruned round" in capsys.readouterr().err


class _KeepTicket(controls.Control):
    """The ticket itself (same masks, rewound weights): a control registered
    from outside the package."""

    name = "keep_ticket"

    def masks(self, masks, seed):
        return {name: np.array(mask) for name, mask in masks.items()}


@pytest.fixture
def keep_ticket(monkeypatch):
    monkeypatch.setattr(controls, "_REGISTRY", dict(controls._REGISTRY))
    controls.register(_KeepTicket())
    return _KeepTicket.name


@pytest.mark.backend_neutral
def test_branch_kind_accepts_every_registered_control(keep_ticket, capsys):
    parser = cli.build_parser()
    kinds = controls.names()
    assert kinds == (
        "random_reinit",
        "random_prune",
        "shuffle_masks",
        "permute_copies",
        keep_ticket,
    )
    for kind in kinds:
        args = parser.parse_args(["branch", "d", "--round", "1", "--kind", kind])
        assert args.kind == kind
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["branch", "d", "--round", "1", "--kind", "shuffle"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'shuffle'" in capsys.readouterr().err


def test_a_registered_control_runs_as_a_branch(keep_ticket, imp_run, capsys):
    args = ["branch", str(imp_run), "--round", "1", "--kind", keep_ticket]
    assert cli.main(args + ["--seed", "2"]) == 0
    path = imp_run / "branches" / "round_001" / keep_ticket / "seed_2"
    record = json.loads((path / "record.json").read_text())
    assert record["kind"] == keep_ticket and record["seed"] == 2
    own = json.loads((imp_run / "round_001" / "record.json").read_text())
    # The ticket's masks, layer by layer.
    assert record["fraction_remaining"] == own["fraction_remaining"]
    assert record["layers_remaining"] == own["layers_remaining"]
    header = capsys.readouterr().out
    assert f"{keep_ticket}_s2 accuracy" in header
    report = (imp_run / "report.txt").read_text().splitlines()
    assert f"{keep_ticket}_s2 accuracy" in report[0]


@pytest.mark.backend_neutral
def test_load_round_reads_a_saved_round_and_names_what_is_missing(run_dir, tmp_path):
    saved = branches.load_round(str(run_dir), 1)
    assert saved.start_step == 3 and saved.round == 1
    assert saved.config == load_config(run_dir / "config.yaml")
    record = json.loads((run_dir / "round_001" / "record.json").read_text())
    assert saved.record == record
    ticket = Ticket.load(run_dir / "round_001" / "ticket.npz")
    for name, mask in ticket.masks.items():
        np.testing.assert_array_equal(saved.ticket.masks[name], mask)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is not a run folder"):
        branches.load_round(str(tmp_path), 1)
    with pytest.raises(ValueError, match=r"Round 2 .* finished rounds: \[0, 1\]"):
        branches.load_round(str(run_dir), 2)
    with pytest.raises(ValueError, match="round must be an int >= 0"):
        branches.load_round(str(run_dir), -1)
    with pytest.raises(ValueError, match="Unknown control 'nope'"):
        branches.run_branch(str(run_dir), 1, "nope")


def _ticket_kernels(ticket):
    paths = [v["path"] for v in ticket.variables]
    out = {}
    for info in ticket.layers:
        index = next(i for i, p in enumerate(paths) if p == f"{info['name']}/kernel")
        out[info["name"]] = ticket.weights[index]
    return out


def test_a_diverging_branch_stops_and_saves_nothing(imp_run):
    from keras_lottery.errors import DivergenceError

    config = (imp_run / "config.yaml").read_text()
    (imp_run / "config.yaml").write_text(
        config.replace("optimizer: adam", "optimizer: sgd").replace(
            "learning_rate: 0.01", "learning_rate: 1.0e+30"
        )
    )
    with pytest.raises(
        DivergenceError,
        match=r"in branch shuffle_masks \(seed 0\) of round 1 at epoch 1",
    ):
        branches.run_branch(str(imp_run), 1, "shuffle_masks", verbose=0)
    assert not (imp_run / "branches" / "round_001" / "shuffle_masks").exists()


def test_a_branch_record_is_verified_and_a_damaged_round_refused(imp_run, capsys):
    from keras_lottery.errors import CorruptFileError

    record = branches.run_branch(str(imp_run), 1, "shuffle_masks", verbose=0)
    folder = imp_run / "branches" / "round_001" / "shuffle_masks" / "seed_0"
    assert branches.run_branch(str(imp_run), 1, "shuffle_masks") == record
    (folder / "record.json").write_text("{}")
    with pytest.raises(CorruptFileError, match="seed_0/record.json is not a valid"):
        branches.run_branch(str(imp_run), 1, "shuffle_masks", verbose=0)
    assert cli.main(["report", str(imp_run)]) == 2
    assert "run that branch again" in capsys.readouterr().err
    trained = imp_run / "round_000" / "trained.npz"
    trained.write_bytes((imp_run / "round_001" / "trained.npz").read_bytes())
    with pytest.raises(CorruptFileError, match="round_000/trained.npz"):
        branches.load_round(str(imp_run), 1)
