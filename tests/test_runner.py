import json
import os
import shutil

import numpy as np
import pytest

from keras_lottery import cli, runner
from keras_lottery.config import load_config
from keras_lottery.ticket import Ticket


def _json(path):
    with open(path) as handle:
        return json.load(handle)


def test_cs_search_is_shared_across_target_sparsities(cs_mlp_config, tmp_path):
    donor = runner.run(load_config(cs_mlp_config), out=str(tmp_path / "a"), verbose=0)
    config = load_config(cs_mlp_config, ["cs.target_sparsity=0.5"])
    assert runner.seed_cs_search(donor, config, out=str(tmp_path / "a"))
    seeded = runner.run(config, out=str(tmp_path / "a"), verbose=0)
    assert seeded != donor
    assert _json(os.path.join(seeded, "search_000", "record.json")) == _json(
        os.path.join(donor, "search_000", "record.json")
    )
    meta = _json(os.path.join(seeded, "result.json"))["ticket"]["ticket"]
    assert meta["target_sparsity"] == 0.5
    assert meta["sparsity_in_scope"] == pytest.approx(0.5, abs=1e-3)
    # Identical to the same config searched from scratch.
    fresh = runner.run(config, out=str(tmp_path / "b"), verbose=0)
    a = Ticket.load(os.path.join(seeded, "ticket.npz"))
    b = Ticket.load(os.path.join(fresh, "ticket.npz"))
    for name, mask in a.masks.items():
        np.testing.assert_array_equal(b.masks[name], mask)
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(x, y)
    assert (
        _json(os.path.join(seeded, "result.json"))["ticket"]["ticket_training"]["test"]
        == _json(os.path.join(fresh, "result.json"))["ticket"]["ticket_training"][
            "test"
        ]
    )
    # A folder with its own search is left alone.
    assert not runner.seed_cs_search(donor, config, out=str(tmp_path / "a"))


def test_cs_search_sharing_refuses_a_different_search(cs_mlp_config, tmp_path):
    out = str(tmp_path / "runs")
    donor = runner.run(load_config(cs_mlp_config), out=out, verbose=0)
    other = load_config(cs_mlp_config, ["cs.penalty=1e-4"])
    with pytest.raises(ValueError, match="not a CS run of the same config"):
        runner.seed_cs_search(donor, other, out=out)
    with pytest.raises(ValueError, match="needs a CS config"):
        runner.seed_cs_search(donor, load_config(cs_mlp_config, ["method=imp"]), out)
    unfinished = str(tmp_path / "unfinished")
    shutil.copytree(donor, unfinished)
    os.remove(os.path.join(unfinished, "search_000", "record.json"))
    config = load_config(cs_mlp_config, ["cs.target_sparsity=0.5"])
    with pytest.raises(ValueError, match=r"finished search rounds \[\], not all 1"):
        runner.seed_cs_search(unfinished, config, out=out)
    assert not os.path.exists(runner.run_dir_for(config, out))


def test_cli_run_from_search(cs_mlp_config, tmp_path, capsys):
    out = str(tmp_path / "runs")
    assert cli.main(["run", str(cs_mlp_config), "--out", out]) == 0
    (donor,) = [os.path.join(out, name) for name in os.listdir(out)]
    args = ["run", str(cs_mlp_config), "--set", "cs.target_sparsity=0.75"]
    assert cli.main(args + ["--from-search", donor, "--out", out]) == 0
    assert f"search rounds copied from {donor}" in capsys.readouterr().out
    assert len(os.listdir(out)) == 2
    bad = ["--set", "cs.rounds=2", "--from-search", donor, "--out", out]
    assert cli.main(args + bad) == 2
    assert "cannot be shared" in capsys.readouterr().err
