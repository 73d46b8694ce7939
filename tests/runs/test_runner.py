"""keras_lottery.runs.runner: hash-named run folders; bad input fails before
any folder exists."""

import os

import keras
import numpy as np
import pytest

from keras_lottery.config import ConfigError, load_config
from keras_lottery.runs import runner
from keras_lottery.soft_masks import LOGITS


@pytest.mark.parametrize(
    "override,match",
    [
        (
            "pruning.layer_fractions={nope: 0.1}",
            "pruning.layer_fractions key 'nope' matches no masked layer",
        ),
        ("pruning.layers=[output, nope]", r"pruning.layers: .*\['nope'\]"),
        ("pruning.exclude=[nope]", r"pruning.exclude: .*\['nope'\]"),
    ],
)
def test_values_checked_against_the_model_fail_before_the_run_folder(
    tiny_config, tmp_path, override, match
):
    config = load_config(tiny_config, [override])  # a valid config on its own
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match=match):
        runner.run(config, out=str(out), verbose=0)
    assert not os.path.exists(runner.run_dir_for(config, str(out)))
    assert not out.exists()


def test_a_value_changed_after_loading_fails_in_the_driver_before_the_folder(
    tiny_config, tmp_path
):
    config = load_config(tiny_config)
    config.pruning.fraction = 1.5  # bypasses the config's own check
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="fraction"):
        runner.run(config, out=str(out), verbose=0)
    assert not out.exists()


def test_cs_layers_outside_the_model_fail_before_the_run_folder(
    cs_mlp_config, tmp_path
):
    config = load_config(cs_mlp_config, ["cs.layers=[output, nope]"])
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match="nope"):
        runner.run(config, out=str(out), verbose=0)
    assert not out.exists()


@pytest.mark.backend_neutral
def test_unknown_driver_options_fail_before_the_run_folder(cs_mlp_config, tmp_path):
    out = tmp_path / "runs"
    config = load_config(cs_mlp_config)
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['extra_rewinds'\]"):
        runner.run(config, out=str(out), extra_rewinds=["1ep"])
    assert not out.exists()


@pytest.mark.backend_neutral
def test_run_folder_names_and_saved_configs(tiny_config, tmp_path):
    config = load_config(tiny_config)
    directory = runner.run_dir_for(config, "runs")
    assert directory == os.path.join("runs", config.hashname())
    assert os.path.basename(directory).startswith("imp_")
    other = load_config(tiny_config, ["seed=1"])
    assert runner.run_dir_for(other, "runs") != directory
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is not a run folder"):
        runner.load_config_of(str(tmp_path))
    (tmp_path / "config.yaml").write_text(config.to_yaml())
    assert runner.load_config_of(str(tmp_path)) == config


def _values(model):
    return [(v.path, keras.ops.convert_to_numpy(v)) for v in model.weights]


@pytest.mark.backend_neutral
def test_prepare_builds_the_seeded_model_the_method_trains(tiny_config, cs_mlp_config):
    config = load_config(tiny_config)
    recipe, model = runner.prepare(config)
    assert recipe.config == config and model.optimizer is not None
    _, again = runner.prepare(config)
    for (path, a), (other, b) in zip(_values(model), _values(again), strict=True):
        assert path == other
        np.testing.assert_array_equal(a, b, err_msg=path)
    _, reseeded = runner.prepare(load_config(tiny_config, ["seed=1"]))
    assert not all(
        np.array_equal(a, b)
        for (_, a), (_, b) in zip(_values(model), _values(reseeded), strict=True)
    )
    assert not any(LOGITS in path for path, _ in _values(model))
    _, soft = runner.prepare(load_config(cs_mlp_config))  # CS: soft masks
    assert any(LOGITS in path for path, _ in _values(soft))


# ------------------------------------------------------------ run-folder integrity


def _resumable(imp_run):
    """``imp_run`` with round 1 and result.json gone: a run interrupted after
    round 0, and its config."""
    import shutil

    (imp_run / "result.json").unlink()
    shutil.rmtree(imp_run / "round_001")
    return load_config(str(imp_run / "config.yaml"))


def _edit_json(path, **changes):
    import json

    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_truncated_ticket_of_a_finished_run_is_refused_by_run_and_report(
    imp_run, capsys
):
    from keras_lottery import cli
    from keras_lottery.errors import CorruptFileError

    config = load_config(str(imp_run / "config.yaml"))
    assert runner.run(config, out=str(imp_run.parent), verbose=0) == str(imp_run)
    ticket = imp_run / "round_001" / "ticket.npz"
    ticket.write_bytes(ticket.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match="round_001/ticket.npz is not a valid"):
        runner.run(config, out=str(imp_run.parent), verbose=0)
    assert cli.main(["report", str(imp_run)]) == 2
    err = capsys.readouterr().err
    assert "truncated or replaced. To recover: delete " in err
    assert "round_001 and every later round_* folder, then re-run" in err


def test_a_deleted_record_stops_the_resume_instead_of_overwriting_later_rounds(
    imp_run,
):
    from keras_lottery.errors import RunFolderError

    (imp_run / "result.json").unlink()
    (imp_run / "round_000" / "record.json").unlink()
    later = (imp_run / "round_001" / "trained.npz").read_bytes()
    with pytest.raises(RunFolderError, match="round_001 is finished but .*round_000"):
        runner.run(load_config(str(imp_run / "config.yaml")), out=str(imp_run.parent))
    assert (imp_run / "round_001" / "trained.npz").read_bytes() == later


def test_resuming_under_another_backend_or_other_data_is_refused(imp_run):
    from keras_lottery.errors import RunFolderError

    config = _resumable(imp_run)
    out = str(imp_run.parent)
    _edit_json(imp_run / "identity.json", backend="other")
    with pytest.raises(RunFolderError, match="started with the other backend"):
        runner.run(config, out=out, verbose=0)
    _edit_json(
        imp_run / "identity.json",
        backend=keras.backend.backend(),
        data={"name": "tiny", "file": "old.npz", "sha256": "0" * 64},
    )
    with pytest.raises(RunFolderError, match=r"started with data old.npz \(sha256"):
        runner.run(config, out=out, verbose=0)
    assert not (imp_run / "round_001").exists()


def test_a_run_folder_in_use_is_refused_with_the_holder_pid(imp_run):
    from keras_lottery.errors import RunFolderError
    from keras_lottery.runs.locking import run_folder_lock

    config = _resumable(imp_run)
    with run_folder_lock(str(imp_run)):
        with pytest.raises(
            RunFolderError, match=f"in use by .* \\(PID {os.getpid()}\\)"
        ):
            runner.run(config, out=str(imp_run.parent), verbose=0)
    assert not (imp_run / "round_001").exists()


def test_a_folder_from_before_manifests_resumes_with_a_warning(imp_run, capsys):
    import json

    from keras_lottery.manifest import verify_phase

    config = _resumable(imp_run)
    (imp_run / "identity.json").unlink()
    (imp_run / "round_000" / "manifest.json").unlink()
    for path in (imp_run / ".tmp-a1", imp_run / "round_000" / ".tmp-b2"):
        path.write_bytes(b"half a file")  # an interrupted write
    runner.run(config, out=str(imp_run.parent), verbose=1)
    assert not list(imp_run.rglob(".tmp-*"))
    out = capsys.readouterr().out
    assert "removed 2 temporary file(s) of an interrupted write" in out
    assert "round [0] of" in out and "written before manifests existed" in out
    assert json.loads((imp_run / "identity.json").read_text())["manifests"] is False
    assert verify_phase(imp_run / "round_001")


def test_divergence_stops_the_run_naming_round_and_epoch(tiny_config, tmp_path):
    from keras_lottery.errors import DivergenceError

    config = load_config(
        tiny_config, ["training.optimizer=sgd", "training.learning_rate=1e30"]
    )
    with pytest.raises(
        DivergenceError,
        match=r"Training diverged in IMP round 0 \(dense\) at epoch 1: the loss",
    ):
        runner.run(config, out=str(tmp_path / "runs"), verbose=0)
    directory = runner.run_dir_for(config, str(tmp_path / "runs"))
    assert not os.path.exists(os.path.join(directory, "round_000"))
    assert not os.path.exists(os.path.join(directory, "result.json"))


def test_a_finished_run_checks_its_data_but_not_its_backend(imp_run):
    from keras_lottery.errors import RunFolderError

    config = load_config(str(imp_run / "config.yaml"))
    out = str(imp_run.parent)
    _edit_json(imp_run / "identity.json", backend="other")
    assert runner.run(config, out=out, verbose=0) == str(imp_run)  # nothing to train
    _edit_json(
        imp_run / "identity.json", data={"name": "tiny", "file": "a", "sha256": "0"}
    )
    with pytest.raises(RunFolderError, match="started with data a"):
        runner.run(config, out=out, verbose=0)
