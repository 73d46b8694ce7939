"""keras_lottery.runs.sharing: runs that start from another run's finished
phases (IMP's dense round, CS's search) end as if they had run alone."""

import json
import os
import shutil

import numpy as np
import pytest

from keras_lottery import cli
from keras_lottery.config import load_config
from keras_lottery.runs import runner, sharing
from keras_lottery.ticket import Ticket
from tests.conftest import write_tiny_config


def _json(path):
    with open(path) as handle:
        return json.load(handle)


@pytest.mark.slow  # 7 s alone, over 60 s in a loaded suite: three CS runs
def test_cs_search_is_shared_across_target_sparsities(cs_mlp_config, tmp_path):
    donor = runner.run(load_config(cs_mlp_config), out=str(tmp_path / "a"), verbose=0)
    config = load_config(cs_mlp_config, ["cs.target_sparsity=0.5"])
    assert sharing.seed_cs_search(donor, config, out=str(tmp_path / "a"))
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
    assert not sharing.seed_cs_search(donor, config, out=str(tmp_path / "a"))


def test_cs_search_sharing_refuses_a_different_search(cs_mlp_config, tmp_path):
    out = str(tmp_path / "runs")
    donor = runner.run(load_config(cs_mlp_config), out=out, verbose=0)
    other = load_config(cs_mlp_config, ["cs.penalty=1e-4"])
    with pytest.raises(ValueError, match="not a CS run of the same config"):
        sharing.seed_cs_search(donor, other, out=out)
    with pytest.raises(ValueError, match="needs a CS config"):
        sharing.seed_cs_search(donor, load_config(cs_mlp_config, ["method=imp"]), out)
    unfinished = str(tmp_path / "unfinished")
    shutil.copytree(donor, unfinished)
    os.remove(os.path.join(unfinished, "search_000", "record.json"))
    config = load_config(cs_mlp_config, ["cs.target_sparsity=0.5"])
    with pytest.raises(ValueError, match=r"finished search rounds \[\], not all 1"):
        sharing.seed_cs_search(unfinished, config, out=out)
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


# ------------------------------------------------------------ IMP dense round


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k != "wall_time"}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _metadata(ticket_npz):
    header = json.loads(bytes(ticket_npz["metadata"]).decode("utf-8"))
    header["metadata"].pop("model_config")
    return header


def test_a_seeded_dense_round_gives_the_same_run_as_training_it(tmp_path):
    path = write_tiny_config(tmp_path)
    base = load_config(path, ["pruning.rounds=1"])
    out = str(tmp_path / "shared")
    donor = runner.run(base, out=out, verbose=0, extra_rewinds=["2it"])
    assert os.path.exists(os.path.join(donor, "extra_rewinds", "2it", "ticket.npz"))
    config = load_config(path, ["pruning.rounds=1", "pruning.rewind=2it"])
    assert sharing.seed_dense_round(donor, config, out=out)
    seeded = runner.run_dir_for(config, out)
    assert sharing.has_dense_round(seeded) and not sharing.has_dense_round(
        runner.run_dir_for(config, str(tmp_path / "elsewhere"))
    )
    assert not sharing.seed_dense_round(donor, config, out=out)  # has round 0
    assert runner.run(config, out=out, verbose=0) == seeded
    # Bitwise the same files as a run that trained its own dense round.
    alone = runner.run(config, out=str(tmp_path / "alone"), verbose=0)
    for name in ("rewind_state.npz", "round_001/trained.npz", "round_001/ticket.npz"):
        a, b = np.load(f"{alone}/{name}"), np.load(f"{seeded}/{name}")
        assert a.files == b.files
        for key in a.files:
            if key == "metadata":  # automatic layer names differ by session
                assert _metadata(a) == _metadata(b)
                continue
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    for name in ("round_000/record.json", "round_001/record.json"):
        assert _without_times(_json(f"{alone}/{name}")) == _without_times(
            _json(f"{seeded}/{name}")
        )


def test_dense_round_sharing_refuses_other_configs(tiny_config, tmp_path):
    out = str(tmp_path / "runs")
    base = load_config(tiny_config, ["pruning.rounds=1"])
    donor = runner.run(base, out=out, verbose=0, extra_rewinds=["2it"])
    other = load_config(tiny_config, ["pruning.rounds=1", "seed=5"])
    with pytest.raises(ValueError, match="same config up to pruning.rewind"):
        sharing.seed_dense_round(donor, other, out=out)
    assert not os.path.exists(runner.run_dir_for(other, out))
    # A rewind point the donor did not save: nothing to share, nothing written.
    unsaved = load_config(tiny_config, ["pruning.rounds=1", "pruning.rewind=4it"])
    assert not sharing.seed_dense_round(donor, unsaved, out=out)
    assert not os.path.exists(runner.run_dir_for(unsaved, out))
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        sharing.seed_dense_round(str(tmp_path), unsaved, out=out)
    with pytest.raises(ValueError, match="takes no option"):
        runner.run(load_config(tiny_config), out=out, extra_rewind=["2it"])
