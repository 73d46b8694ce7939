"""keras_lottery.runs.retrain: a saved round's ticket retrained with tweaks as
a branch of the run (keras-lottery retrain)."""

import json

import keras
import pytest

from keras_lottery import cli
from keras_lottery.config import RetrainConfig, load_config
from keras_lottery.recipes import Recipe
from keras_lottery.runs.retrain import load_transformed, run_retrain
from keras_lottery.training import evaluate
from keras_lottery.tweaks import registry
from keras_lottery.tweaks.retraining import settings_name


@pytest.mark.slow  # ~9 s on the loaded 2-core machine: over this budget
def test_retrain_cli_trains_the_ticket_with_tweaks_and_joins_the_report(
    imp_run, capsys, monkeypatch
):
    args = ["retrain", str(imp_run), "--round", "1", "--tweak", "label_smoothing"]
    args += ["--tweak", "kd", "--set", "retrain.kd_alpha=0.5"]
    assert cli.main(args) == 0
    settings = RetrainConfig(tweaks=["label_smoothing", "kd"], kd_alpha=0.5)
    folder = imp_run / "retrain" / "round_001" / settings_name(settings) / "seed_0"
    record = json.loads((folder / "record.json").read_text())
    assert record["settings"]["kd_alpha"] == 0.5 and (folder / "trained.npz").exists()
    assert record["start_step"] == 3 and record["training"]["steps"] == 7
    out = capsys.readouterr().out
    header = [line for line in out.splitlines() if line.lstrip().startswith("round")]
    column = f"retrain:{record['label']} accuracy"
    assert record["label"].startswith("label_smoothing+kd@") and column in header[-1]
    report = (imp_run / "report.txt").read_text().splitlines()
    accuracy = record["training"]["test"]["accuracy"]
    assert f"{accuracy:.4f}" in report[2].split()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished retraining must not train again")

    monkeypatch.setattr(keras.Model, "fit", no_training)
    assert cli.main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert not (folder / "transformed.npz").exists()  # no model transform


@pytest.mark.slow  # a retraining (~6 s on the loaded machine)
def test_a_transformed_retraining_saves_and_reloads_the_network_it_trained(
    imp_run, monkeypatch
):
    def swish(model, settings):  # the transform as a plain copy
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy

    monkeypatch.setattr(registry.get("swish"), "transform", swish)
    record = run_retrain(str(imp_run), 1, ["swish"], verbose=0)
    folder = imp_run / "retrain" / "round_001"
    assert len(list(folder.glob("retrain_*/seed_0/transformed.npz"))) == 1
    model = load_transformed(str(imp_run), 1, ["swish"])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    recipe = Recipe(load_config(imp_run / "config.yaml"))
    accuracy = evaluate(model, recipe.test_data)["accuracy"]
    assert accuracy == pytest.approx(record["training"]["test"]["accuracy"])


@pytest.mark.backend_neutral
def test_misfits_and_bad_settings_exit_2_before_anything_is_written(
    imp_run, capsys, monkeypatch
):
    def no_blocks(model, settings):
        raise ValueError("no residual basic blocks in this model")

    monkeypatch.setattr(registry.get("extra_skips"), "transform", no_blocks)
    base = ["retrain", str(imp_run), "--round", "1"]
    assert cli.main([*base, "--tweak", "extra_skips"]) == 2
    assert "'extra_skips', which does not fit" in capsys.readouterr().err
    assert cli.main([*base, "--set", "seed=3"]) == 2
    assert "only retrain.* settings" in capsys.readouterr().err
    assert cli.main([*base, "--set", "retrain.kd_alpha=2"]) == 2
    assert "'retrain.kd_alpha' must be in [0, 1]" in capsys.readouterr().err
    assert cli.main(["retrain", str(imp_run), "--round", "0"]) == 2
    assert "pruned round" in capsys.readouterr().err
    assert not (imp_run / "retrain").exists()
    with pytest.raises(SystemExit):
        cli.main([*base, "--tweak", "relu"])
    assert "invalid choice: 'relu'" in capsys.readouterr().err
