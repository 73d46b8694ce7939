import os

import keras_tuner
import numpy as np
import pytest

from keras_lottery.config import load_config
from keras_lottery.ticket import Ticket
from keras_lottery.tuning import CSHyperModel
from tests.test_examples import load_example


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
        ticket = Ticket.load(hypermodel.ticket_path(hp))
        metrics = trial.metrics.get_last_value("weights_remaining")
        assert metrics == pytest.approx(1 - ticket.sparsity)
        remaining[hp.get("mask_initial_value")] = metrics
        assert 0 <= trial.metrics.get_last_value("val_accuracy") <= 1
    assert remaining[-0.5] < remaining[0.5]
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


def test_hypermodel_validates_its_arguments(cs_mlp_config):
    config = load_config(cs_mlp_config)
    with pytest.raises(ValueError, match="method 'imp'"):
        CSHyperModel(load_config(None))
    with pytest.raises(ValueError, match="non-empty list of numbers"):
        CSHyperModel(config, mask_initial_values=[])
    with pytest.raises(ValueError, match="penalties must be >= 0"):
        CSHyperModel(config, penalties=[np.float64(-1.0)])
