"""keras-lottery export (keras_lottery.runs.export): run folders and ticket files
to every format, end to end through the CLI."""

import json
import os
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_lottery import cli, paths
from keras_lottery._io import load_arrays
from keras_lottery.export import litert, load_sparse
from keras_lottery.rewind import restore_state
from keras_lottery.ticket import Ticket
from tests.conftest import tensorflow_only


def export(*args) -> int:
    return cli.main(["export", *map(str, args)])


@tensorflow_only
def test_last_round_trained_weights_to_sparse_litert(imp_run, tmp_path, capsys, rng):
    out = tmp_path / "ship" / "ticket.tflite"
    assert export(imp_run, "--format", "litert", "--sparse", "--out", out) == 0
    printed = capsys.readouterr().out
    assert "exported litert (sparse=True)" in printed
    assert f"size report: {out}.size.json" in printed
    report = json.loads((tmp_path / "ship" / "ticket.tflite.size.json").read_text())
    assert report["source"]["round"] == 1 and report["source"]["weights"] == "trained"
    assert report["file_bytes"] == out.stat().st_size
    with open(paths.round_record(imp_run, 1)) as handle:
        remaining = json.load(handle)["fraction_remaining"]
    assert report["sparsity"] == pytest.approx(1 - remaining, abs=1e-6)
    model = Ticket.load(paths.round_ticket(imp_run, 1)).build_model()
    restore_state(model, load_arrays(paths.round_trained(imp_run, 1)))
    x = rng.random((4, *model.inputs[0].shape[1:])).astype("float32")
    np.testing.assert_allclose(
        litert.predict_litert(litert.load_interpreter(out), x),
        model.predict(x, verbose=0),
        atol=1e-5,
    )


def test_rewind_weights_of_a_chosen_round_to_sparse_npz(imp_run, tmp_path):
    out = tmp_path / "round0.npz"
    args = ["--round", 0, "--weights", "rewind", "--format", "sparse-npz"]
    assert export(imp_run, *args, "--out", out) == 0
    exported = load_sparse(out)
    ticket = Ticket.load(paths.round_ticket(imp_run, 0))
    for got, want in zip(exported.weights, ticket.weights, strict=True):
        np.testing.assert_array_equal(got, want)  # round 0: nothing pruned
    assert exported.metadata["round"] == 0
    report = json.loads((tmp_path / "round0.npz.size.json").read_text())
    assert report["source"]["weights"] == "rewind"


def test_bad_requests_are_one_line_errors_and_write_nothing(
    imp_run, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    out.mkdir()

    def refused(*args) -> str:
        assert export(*args) == 2
        assert os.listdir(out) == []
        err = capsys.readouterr().err
        assert err.startswith("keras-lottery: error: ") and err.count("\n") == 1
        return err

    target = out / "t.npz"
    assert "finished rounds: 0-1" in refused(
        imp_run, "--round", 7, "--format", "sparse-npz", "--out", target
    )
    ticket = tmp_path / "lone.npz"
    shutil.copy(paths.round_ticket(imp_run, 1), ticket)
    assert "pass --weights rewind" in refused(
        ticket, "--format", "sparse-npz", "--out", target
    )
    assert "applies to run folders" in refused(
        ticket, "--round", 1, "--format", "sparse-npz", "--out", target
    )
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    assert "pip install 'keras-lottery[onnx]'" in refused(
        imp_run, "--format", "onnx", "--out", out / "t.onnx"
    )
    assert "does not exist" in refused(
        tmp_path / "nope", "--format", "keras", "--out", out / "t.keras"
    )
    started = tmp_path / "started"
    started.mkdir()
    shutil.copy(paths.config(imp_run), paths.config(started))
    assert "no finished round" in refused(
        started, "--format", "sparse-npz", "--out", target
    )
    os.remove(paths.round_record(imp_run, 0))
    assert "round_000/record.json is missing" in refused(
        imp_run, "--format", "sparse-npz", "--out", target
    )


def test_a_damaged_round_is_refused_by_its_manifest(imp_run, tmp_path, capsys):
    trained = paths.round_trained(imp_run, 1)
    with open(trained, "r+b") as handle:
        handle.truncate(os.path.getsize(trained) // 2)
    out = tmp_path / "t.npz"
    assert export(imp_run, "--format", "sparse-npz", "--out", out) == 2
    err = capsys.readouterr().err
    assert "round_001" in err and "trained.npz" in err and "re-run" in err
    assert not out.exists()


def test_existing_output_needs_overwrite(imp_run, tmp_path, capsys):
    out = tmp_path / "t.npz"
    out.write_bytes(b"old")
    assert export(imp_run, "--format", "sparse-npz", "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"old"
    assert export(imp_run, "--format", "sparse-npz", "--out", out, "--overwrite") == 0
    assert load_sparse(out).metadata["round"] == 1


def test_cs_run_folder_exports_its_one_ticket(imp_run, tmp_path, capsys):
    cs_run = tmp_path / "cs_run"
    os.makedirs(paths.cs_ticket_dir(cs_run))
    shutil.copy(paths.config(imp_run), paths.config(cs_run))
    shutil.copy(paths.round_ticket(imp_run, 1), paths.cs_ticket(cs_run))
    trained = paths.trained(paths.cs_ticket_dir(cs_run))
    shutil.copy(paths.round_trained(imp_run, 1), trained)
    out = tmp_path / "cs.npz"
    assert export(cs_run, "--round", 1, "--format", "sparse-npz", "--out", out) == 2
    assert "no finished round" in capsys.readouterr().err  # record.json missing
    (tmp_path / "cs_run" / "ticket" / "record.json").write_text("{}")
    assert export(cs_run, "--round", 1, "--format", "sparse-npz", "--out", out) == 2
    assert "--round applies to IMP runs" in capsys.readouterr().err
    assert export(cs_run, "--format", "sparse-npz", "--out", out) == 0
    state = load_arrays(trained)
    exported = load_sparse(out)
    model = Ticket.load(paths.cs_ticket(cs_run)).build_model()
    restore_state(model, state)
    for got, want in zip(
        exported.weights, Ticket.from_model(model).weights, strict=True
    ):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "method",
    ["imp", pytest.param("cs", marks=pytest.mark.slow)],  # ~5 s each
)
def test_a_run_trained_with_a_soft_activation_exports_the_network_it_trained(
    method, swish_run, tmp_path, capsys
):
    from keras_lottery.config import load_config
    from keras_lottery.recipes import Recipe
    from keras_lottery.training import evaluate

    run_dir = swish_run(method)
    phase = (
        paths.round_dir(run_dir, 1) if method == "imp" else paths.cs_ticket_dir(run_dir)
    )
    manifest = json.loads((Path(phase) / "manifest.json").read_text())
    assert "transformed.npz" in manifest["files"]
    assert not os.path.exists(paths.transformed(paths.round_dir(run_dir, 0)))

    out = tmp_path / "ticket.keras"
    assert export(run_dir, "--format", "keras", "--out", out) == 0
    report = json.loads(out.with_name("ticket.keras.size.json").read_text())
    assert report["source"]["tweaks"] == ["swish"]
    exported = keras.saving.load_model(out)
    exported.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    recipe = Recipe(load_config(paths.config(run_dir)))
    record = json.loads((Path(phase) / "record.json").read_text())
    trained = record["ticket" if method == "imp" else "ticket_training"]["test"]
    assert evaluate(exported, recipe.test_data)["accuracy"] == pytest.approx(
        trained["accuracy"]
    )
    # What the export did before: the ReLU network with the swish-trained values.
    ticket_file = os.path.join(phase, "..", "ticket.npz") if method == "cs" else None
    ticket = Ticket.load(ticket_file or paths.round_ticket(run_dir, 1))
    relu = ticket.build_model()
    restore_state(relu, load_arrays(paths.trained(phase)))
    x = np.asarray(recipe.splits.x_test[:8])
    assert not np.allclose(relu.predict(x, verbose=0), exported.predict(x, verbose=0))

    if method == "imp":  # the dense round 0 trained without the tweaks
        dense = tmp_path / "dense.keras"
        assert export(run_dir, "--round", 0, "--format", "keras", "--out", dense) == 0
        report = json.loads(dense.with_name("dense.keras.size.json").read_text())
        assert "tweaks" not in report["source"]
        # A round's ticket file alone does not say which tweaks trained it.
        bad = tmp_path / "x.keras"
        source = paths.round_ticket(run_dir, 1)
        assert export(source, "--format", "keras", "--out", bad) == 2
        assert "export its run folder" in capsys.readouterr().err
        assert not bad.exists()


def test_a_transformed_phase_without_its_trained_network_is_refused(tmp_path):
    from keras_lottery.config import RetrainConfig
    from keras_lottery.errors import RunFolderError
    from keras_lottery.models import get
    from keras_lottery.runs.retrain import trained_network

    # A folder from before transformed.npz was written: trained.npz only.
    model = get("lenet_300_100", hidden=[8, 4])
    with pytest.raises(RunFolderError, match=r"holds no transformed.npz.*--weights"):
        trained_network(model, RetrainConfig(tweaks=["swish"]), str(tmp_path))


@pytest.fixture(scope="module")
def resnet_retrained(tmp_path_factory):
    """A 1-round IMP run of a CIFAR ResNet-8 (width 4) on the tiny 6x6 images,
    its round-1 ticket retrained with swish + extra skips: the retraining
    folder."""
    from keras_lottery.runs.retrain import run_retrain
    from tests.conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("resnet_retrained")
    config = root / "resnet.yaml"
    config.write_text(f"""
data: {{name: tiny, path: {write_tiny_dataset(root)}, validation_size: 10}}
model: {{name: cifar_resnet, options: {{depth: 8, width: 4}}}}
training: {{batch_size: 16, duration: 1ep, learning_rate: 0.01}}
pruning: {{fraction: 0.5, rounds: 1, rewind: 2it}}
baselines: []
""")
    assert cli.main(["run", str(config), "--out", str(root / "runs")]) == 0
    (run_dir,) = (root / "runs").iterdir()
    record = run_retrain(str(run_dir), 1, ["swish", "extra_skips"], verbose=0)
    (folder,) = (run_dir / "retrain" / "round_001").glob("retrain_*/seed_0")
    return folder, record


def test_a_retraining_folder_exports_the_network_it_trained(imp_run, tmp_path, capsys):
    from keras_lottery.runs.retrain import load_retrained, run_retrain

    run_retrain(str(imp_run), 1, ["swish"], verbose=0)
    (folder,) = (imp_run / "retrain" / "round_001").glob("retrain_*/seed_0")
    out = tmp_path / "retrained.npz"
    assert export(folder, "--format", "sparse-npz", "--out", out) == 0
    model, record = load_retrained(str(folder))
    assert model.get_layer("stage1_block1_fc").activation is keras.activations.silu
    exported = load_sparse(out)
    assert exported.metadata["retrain"]["tweaks"] == ["swish"]
    for got, want in zip(exported.build_model().weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    report = json.loads((tmp_path / "retrained.npz.size.json").read_text())
    assert report["source"]["extra_skip_parameters"] == 0
    assert report["sparsity"] == pytest.approx(1 - record["fraction_remaining"])

    bad = tmp_path / "x.keras"
    assert export(folder, "--weights", "rewind", "--format", "keras", "--out", bad) == 2
    assert "holds a retrained network only" in capsys.readouterr().err
    assert export(folder, "--round", 1, "--format", "keras", "--out", bad) == 2
    assert "is one retraining" in capsys.readouterr().err
    assert not bad.exists()


@pytest.mark.slow  # an IMP run and a retraining of a ResNet (~20 s)
@tensorflow_only
def test_a_retraining_folder_exports_its_network_with_the_extra_paths(
    resnet_retrained, tmp_path, capsys, rng
):
    from keras_lottery.runs.retrain import load_retrained
    from keras_lottery.tweaks.skips import extra_skip_layers, extra_skip_parameters

    folder, record = resnet_retrained
    out = tmp_path / "retrained.keras"
    assert export(folder, "--format", "keras", "--out", out) == 0
    printed = capsys.readouterr().out
    model, _ = load_retrained(str(folder))
    extra = extra_skip_parameters(model)
    assert f"extra skip paths: {extra:,} dense parameters" in printed
    report = json.loads(out.with_name("retrained.keras.size.json").read_text())
    assert report["source"]["tweaks"] == ["swish", "extra_skips"]
    assert report["source"]["extra_skip_parameters"] == extra > 0
    # The extra paths are dense and outside the sparsity: the ticket's own.
    assert report["sparsity"] == pytest.approx(1 - record["fraction_remaining"])

    loaded = keras.saving.load_model(out)
    assert extra_skip_layers(loaded) == extra_skip_layers(model)
    x = rng.random((4, *model.inputs[0].shape[1:])).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    # The network as retrained: its test accuracy is the record's.
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    from keras_lottery.config import load_config
    from keras_lottery.recipes import Recipe
    from keras_lottery.training import evaluate

    recipe = Recipe(load_config(folder.parents[3] / "config.yaml"))
    accuracy = evaluate(model, recipe.test_data)["accuracy"]
    assert accuracy == pytest.approx(record["training"]["test"]["accuracy"])
