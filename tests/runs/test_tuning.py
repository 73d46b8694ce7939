"""keras_lottery.runs.tuning: CS searches as Keras Tuner trials, whose metrics
are the numbers of the trial's run folder."""

import json
import os

import keras
import keras_tuner
import numpy as np
import pytest

from keras_lottery._io import load_arrays
from keras_lottery.config import load_config
from keras_lottery.errors import ConfigError, RunFolderError
from keras_lottery.runs import runner, tuning
from keras_lottery.runs.tuning import CSHyperModel, TicketGridSearch, metrics
from keras_lottery.ticket import Ticket
from tests.helpers import to_numpy
from tests.test_examples import load_example


def _json(path):
    with open(path) as handle:
        return json.load(handle)


def test_keras_tuner_grid_over_s0_gives_a_family_of_tickets(cs_mlp_config, tmp_path):
    # Through the example script, which builds CSHyperModel and a GridSearch.
    example = load_example("tune_cs_with_keras_tuner.py")
    out = str(tmp_path / "runs")
    args = [str(cs_mlp_config), "--s0", "-0.5", "0.5", "--out", out]
    tuner = example.main(args + ["--tuner-dir", str(tmp_path / "tuning")])
    hypermodel = tuner.hypermodel
    assert isinstance(hypermodel, CSHyperModel)
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2
    remaining = {}
    for trial in trials:
        hp = trial.hyperparameters
        run_dir = hypermodel.run_dir(hp)
        assert run_dir == runner.run_dir_for(hypermodel.trial_config(hp), out)
        assert hypermodel.ticket_path(hp) == os.path.join(run_dir, "ticket.npz")
        # What the tuner recorded is exactly what the run folder holds.
        result = _json(os.path.join(run_dir, "result.json"))
        record = result["ticket"]
        expected = metrics(result)
        assert expected == {
            "val_accuracy": record["ticket_training"]["final"]["val_accuracy"],
            "test_accuracy": record["ticket_training"]["test"]["accuracy"],
            "weights_remaining": 1 - record["ticket"]["sparsity"],
            "weights_remaining_in_scope": 1 - record["ticket"]["sparsity_in_scope"],
            "epochs": float(record["epochs"]["total"]),
        }
        for name, value in expected.items():
            assert trial.metrics.get_last_value(name) == value, name
        ticket = Ticket.load(hypermodel.ticket_path(hp))
        assert expected["weights_remaining"] == pytest.approx(1 - ticket.sparsity)
        assert record["ticket"]["mask_initial_value"] == hp.get("mask_initial_value")
        remaining[hp.get("mask_initial_value")] = expected["weights_remaining"]
    assert remaining[-0.5] < remaining[0.5]
    best = max(trials, key=lambda t: t.metrics.get_last_value("val_accuracy"))
    assert trials[0].trial_id == best.trial_id  # the objective: val_accuracy, max
    # A second tuner over the same run folders reuses the finished runs.
    stamp = os.path.getmtime(hypermodel.ticket_path(trials[0].hyperparameters))
    again = keras_tuner.GridSearch(
        hypermodel,
        objective=hypermodel.objective,
        directory=str(tmp_path / "tuning2"),
        project_name="cs",
    )
    again.search()
    assert os.path.getmtime(hypermodel.ticket_path(trials[0].hyperparameters)) == stamp
    # get_best_models rebuilds each trial's ticket with its trained weights.
    best_models = tuner.get_best_models(2)
    for trial, model in zip(trials, best_models, strict=True):
        run_dir = hypermodel.run_dir(trial.hyperparameters)
        trained = load_arrays(os.path.join(run_dir, "ticket", "trained.npz"))
        for variable, value in zip(model.weights, trained, strict=True):
            np.testing.assert_array_equal(to_numpy(variable), value)
    # Data passed to search is refused, not silently ignored.
    with pytest.raises(ConfigError, match="call tuner.search\\(\\) without x"):
        again.hypermodel.fit(trials[0].hyperparameters, None, np.zeros(3))
    # A fresh search that must not reuse earlier run folders says so.
    strict = CSHyperModel(
        hypermodel.config,
        mask_initial_values=[-0.5, 0.5],
        out=out,
        reuse_finished=False,
    )
    fresh = keras_tuner.GridSearch(
        strict,
        objective=strict.objective,
        directory=str(tmp_path / "tuning3"),
        project_name="cs",
        overwrite=True,
    )
    with pytest.raises(RunFolderError, match="already holds a finished run"):
        fresh.search()


def test_metrics_of_an_imp_run_are_its_last_round(imp_run):
    result = _json(imp_run / "result.json")
    last = result["rounds"][-1]
    epochs = sum(r["ticket"]["epochs"] for r in result["rounds"])
    assert metrics(result) == {
        "val_accuracy": last["ticket"]["final"]["val_accuracy"],
        "test_accuracy": last["ticket"]["test"]["accuracy"],
        "weights_remaining": last["fraction_remaining"],
        "weights_remaining_in_scope": last["fraction_remaining"],
        "epochs": float(epochs),
    }


def test_metrics_without_validation_data_give_nan_val_accuracy():
    training = {"epochs": 2, "final": {"accuracy": 0.5}, "test": {"accuracy": 0.4}}
    result = {
        "method": "cs",
        "ticket": {
            "ticket_training": training,
            "ticket": {"sparsity": 0.75, "sparsity_in_scope": 0.8},
            "epochs": {"search": 2, "ticket": 2, "total": 4},
        },
    }
    out = metrics(result)
    assert np.isnan(out["val_accuracy"])
    assert out["test_accuracy"] == 0.4 and out["epochs"] == 4.0
    assert out["weights_remaining"] == 0.25
    assert out["weights_remaining_in_scope"] == pytest.approx(0.2)


def test_hypermodel_validates_its_arguments(cs_mlp_config):
    config = load_config(cs_mlp_config)
    with pytest.raises(ValueError, match="method 'imp'"):
        CSHyperModel(load_config(None))
    with pytest.raises(ValueError, match="non-empty list of numbers"):
        CSHyperModel(config, mask_initial_values=[])
    with pytest.raises(ValueError, match="penalties must be >= 0"):
        CSHyperModel(config, penalties=[np.float64(-1.0)])


@pytest.mark.slow  # ~28 s: two IMP runs, then both rebuilt by get_best_models
def test_imp_hypermodel_tunes_the_pruning_rate_and_returns_trained_tickets(tmp_path):
    from keras_lottery import pruning
    from keras_lottery.runs.tuning import IMPHyperModel
    from tests.conftest import write_tiny_config

    config = load_config(
        write_tiny_config(tmp_path, baselines="[]"), ["pruning.rounds=1"]
    )
    hypermodel = IMPHyperModel(
        config, fractions=[0.5, 0.75], rewinds=["3it"], out=str(tmp_path / "runs")
    )
    tuner = TicketGridSearch(
        hypermodel,
        objective=hypermodel.objective,
        directory=str(tmp_path / "tuning"),
        project_name="imp",
    )
    tuner.search()
    trials = tuner.oracle.get_best_trials(2)
    for trial, model in zip(trials, tuner.get_best_models(2), strict=True):
        hp = trial.hyperparameters
        assert hypermodel.trial_config(hp).pruning.rewind == "3it"
        remaining = pruning.sparsity_report(model).fraction_remaining
        assert remaining == trial.metrics.get_last_value("weights_remaining")
        run_dir = hypermodel.run_dir(hp)
        trained = load_arrays(os.path.join(run_dir, "round_001", "trained.npz"))
        for variable, value in zip(model.weights, trained, strict=True):
            np.testing.assert_array_equal(to_numpy(variable), value)
    fractions = {t.hyperparameters.get("fraction"): t for t in trials}
    assert set(fractions) == {0.5, 0.75}
    with pytest.raises(ConfigError, match="rewind"):
        IMPHyperModel(config, rewinds=["soon"])


def test_a_trial_trained_with_a_soft_activation_is_rebuilt_as_trained(swish_run):
    from keras_lottery import paths
    from keras_lottery.recipes import Recipe
    from keras_lottery.training import evaluate

    run_dir = swish_run("imp")
    config = load_config(paths.config(run_dir))
    hypermodel = tuning.IMPHyperModel(config, out=str(run_dir.parent))
    model = hypermodel.build(keras_tuner.HyperParameters())  # the finished trial
    activations = {getattr(layer, "activation", None) for layer in model.layers}
    assert keras.activations.silu in activations
    assert keras.activations.relu not in activations
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ticket = _json(paths.round_record(run_dir, 1))["ticket"]
    accuracy = evaluate(model, Recipe(config).test_data)["accuracy"]
    assert accuracy == pytest.approx(ticket["test"]["accuracy"])


def test_a_trial_that_prunes_every_weight_is_flagged(
    cs_mlp_config, tmp_path, monkeypatch, capsys
):
    from keras_lottery.runs import tuning

    def fake_run(config, out, verbose, prepared):
        directory = tmp_path / "run"
        directory.mkdir()
        (directory / "result.json").write_text("{}")
        return str(directory)

    monkeypatch.setattr(tuning.runner, "run", fake_run)
    empty = {"val_accuracy": 0.1, "test_accuracy": 0.1, "weights_remaining": 0.0}
    monkeypatch.setattr(tuning, "metrics", lambda result: dict(empty))
    hypermodel = CSHyperModel(load_config(cs_mlp_config), out=str(tmp_path / "runs"))
    assert hypermodel.fit(keras_tuner.HyperParameters(), None) == empty
    assert "pruned every weight (0% remaining" in capsys.readouterr().out


def test_a_worker_told_to_wait_pauses_before_asking_again(monkeypatch):
    calls = []

    class Tuner:
        def pre_create_trial(self):
            calls.append("ask")

        def on_trial_begin(self, trial):
            calls.append(f"run {trial}")

    class Waiting(tuning.IdlePause, Tuner):
        pass

    monkeypatch.setattr(tuning.time, "sleep", lambda s: calls.append(f"sleep {s}"))
    tuner = Waiting()
    tuner.pre_create_trial()  # the first request: at once
    tuner.on_trial_begin(0)
    tuner.pre_create_trial()  # after a trial: at once
    tuner.pre_create_trial()  # the last request began no trial (IDLE): a pause
    assert calls == ["ask", "run 0", "ask", "sleep 0.05", "ask"]
