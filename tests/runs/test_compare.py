"""keras_lottery.runs.compare: IMP curves and CS tickets side by side, epochs spent."""

import json
import os

import pytest

from keras_lottery import cli
from keras_lottery.config import RunConfig
from keras_lottery.runs.compare import first_reaching, load_curve, write_comparison


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(obj, handle)


def _imp_run(root, name, rewind, rounds):
    """An IMP run folder: ``rounds`` is [(fraction remaining, test acc, epochs)]."""
    directory = os.path.join(root, name)
    os.makedirs(directory)
    config = RunConfig()
    config.pruning.rewind = rewind
    with open(os.path.join(directory, "config.yaml"), "w") as handle:
        handle.write(config.to_yaml())
    for i, (remaining, accuracy, epochs) in enumerate(rounds):
        _write(
            os.path.join(directory, f"round_{i:03d}", "record.json"),
            {
                "round": i,
                "fraction_remaining": remaining,
                "baselines": {"random_reinit": {"test": {"accuracy": 0.1}}},
                "ticket": {
                    "epochs": epochs,
                    "final": {"val_accuracy": accuracy - 0.01},
                    "test": {"accuracy": accuracy},
                },
            },
        )
    return directory


def _cs_run(root, name, sparsity, accuracy, search_epochs, ticket_epochs):
    directory = os.path.join(root, name)
    os.makedirs(directory)
    config = RunConfig(method="cs")
    with open(os.path.join(directory, "config.yaml"), "w") as handle:
        handle.write(config.to_yaml())
    _write(
        os.path.join(directory, "search_000", "record.json"),
        {"round": 0, "fraction_remaining": 0.5, "training": {"history": {}}},
    )
    if accuracy is not None:
        _write(
            os.path.join(directory, "ticket", "record.json"),
            {
                "epochs": {
                    "search": search_epochs,
                    "ticket": ticket_epochs,
                    "total": search_epochs + ticket_epochs,
                },
                "ticket_training": {
                    "epochs": ticket_epochs,
                    "final": {"val_accuracy": accuracy - 0.01},
                    "test": {"accuracy": accuracy},
                },
                "ticket": {"sparsity": sparsity, "sparsity_in_scope": sparsity + 0.1},
            },
        )
    return directory


@pytest.fixture
def runs(tmp_path):
    rounds = [(1.0, 0.60, 12), (0.8, 0.62, 11), (0.64, 0.63, 11), (0.512, 0.64, 11)]
    imp = _imp_run(tmp_path, "imp_a", "1ep", rounds)
    cs = _cs_run(tmp_path, "cs_b", 0.4, 0.66, 24, 12)
    return imp, cs


def test_imp_epochs_accumulate_over_rounds_and_controls_do_not_count(runs):
    curve = load_curve(runs[0])
    assert curve.method == "imp"
    assert curve.label == "IMP, rewind 1ep"
    assert [p.epochs for p in curve.points] == [12, 23, 34, 45]
    assert [p.phase for p in curve.points] == [f"round {i}" for i in range(4)]
    assert [p.accuracy for p in curve.points] == [0.60, 0.62, 0.63, 0.64]


def test_cs_ticket_is_one_point_with_all_epochs(runs):
    curve = load_curve(runs[1], label="CS s0=0")
    assert curve.label == "CS s0=0" and curve.method == "cs"
    (point,) = curve.points
    assert point.remaining == pytest.approx(0.6)
    assert point.accuracy == 0.66 and point.epochs == 36


def test_first_reaching_takes_the_first_round_at_or_below(runs):
    curve = load_curve(runs[0])
    assert first_reaching(curve, 0.64).phase == "round 2"  # equal counts
    assert first_reaching(curve, 0.7).phase == "round 2"
    assert first_reaching(curve, 0.5) is None


def test_comparison_files_and_the_epochs_ratio(runs, tmp_path):
    out = tmp_path / "cmp"
    text = write_comparison(list(runs), str(out))
    data = json.loads((out / "comparison.json").read_text())
    (row,) = data["cost"]
    # The CS ticket keeps 60%: IMP first keeps at most that at round 3 (51.2%),
    # after 12 + 3 x 11 = 45 epochs.
    assert row["imp_phase"] == "round 3"
    assert row["imp_epochs"] == 45 and row["cs_epochs"] == 36
    assert row["epochs_ratio"] == pytest.approx(36 / 45)
    assert "CS / IMP epochs = 0.80" in text
    assert (out / "comparison.txt").read_text().strip() == text
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data["runs"]) == 2


def test_unreached_sparsity_and_unfinished_cs_are_reported(tmp_path):
    imp = _imp_run(tmp_path, "imp_a", "0it", [(1.0, 0.6, 12), (0.8, 0.6, 12)])
    cs = _cs_run(tmp_path, "cs_b", 0.9, 0.7, 36, 12)
    pending = _cs_run(tmp_path, "cs_c", None, None, 0, 0)
    text = write_comparison([imp, cs, pending], str(tmp_path / "out"))
    assert "IMP, rewind 0it has not reached it" in text
    assert load_curve(pending).points == []


def test_bad_input_is_a_clear_error(runs, tmp_path):
    with pytest.raises(ValueError, match="one label per run folder"):
        write_comparison(list(runs), str(tmp_path / "o"), labels=["only one"])
    with pytest.raises(ValueError, match="at least one run folder"):
        write_comparison([], str(tmp_path / "o"))
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        write_comparison([str(tmp_path)], str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()  # nothing written on bad input


def test_cli_compare(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli.main(["compare", *runs, "--out", str(out), "--label", "a"])
    assert code == 2
    assert "one label per run folder" in capsys.readouterr().err
    code = cli.main(["compare", *runs, "--out", str(out)])
    assert code == 0
    assert "CS / IMP epochs = 0.80" in capsys.readouterr().out
    assert (out / "comparison.png").exists()
