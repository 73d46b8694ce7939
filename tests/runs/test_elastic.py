"""``keras-lottery elastic``: a tiny CIFAR ResNet IMP run stretched end to end."""

import json

import numpy as np
import pytest

from keras_lottery import cli, paths
from keras_lottery.runs import elastic as elastic_runs
from keras_lottery.ticket import Ticket
from tests.conftest import write_tiny_dataset


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """IMP on a width-2 ResNet-14 (one pruned round, rewind 2 iterations)."""
    root = tmp_path_factory.mktemp("elastic_source")
    config = root / "resnet.yaml"
    config.write_text(f"""
data: {{name: tiny, path: {write_tiny_dataset(root)}, validation_size: 10}}
model: {{name: cifar_resnet, options: {{depth: 14, width: 2}}}}
training: {{batch_size: 20, duration: 1ep, learning_rate: 0.01}}
pruning: {{fraction: 0.5, rounds: 1, rewind: 2it, scope: global, layers: paper}}
baselines: []
""")
    out = root / "runs"
    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    (directory,) = list(out.iterdir())
    return directory


@pytest.mark.slow  # ~35 s of IMP, then two ResNet-20 trainings (~2 min here)
@pytest.mark.backend_neutral
def test_elastic_cli_trains_the_stretched_ticket_and_a_control(
    resnet_run, tmp_path, capsys
):
    args = ["elastic", str(resnet_run), "--round", "1", "--to", "cifar_resnet_20"]
    args += ["--out", str(tmp_path)]
    assert cli.main(args) == 0  # the ticket alone, then a control added later
    args += ["--control", "permute_copies"]
    assert cli.main(args) == 0
    (directory,) = list(tmp_path.iterdir())
    assert directory.name.startswith("elastic_")
    out = capsys.readouterr().out
    assert "-> cifar_resnet_20 (map 0:0;1:1,2, strategy inter" in out
    result = json.loads((directory / "result.json").read_text())
    assert set(result["arms"]) == {"ticket", "permute_copies"}
    ticket = Ticket.load(paths.elastic_ticket(str(directory)))
    source = Ticket.load(paths.round_ticket(str(resnet_run), 1))
    assert ticket.metadata["rewind_iterations"] == 2
    np.testing.assert_array_equal(
        ticket.masks["stage2_block3_conv1"], source.masks["stage2_block2_conv1"]
    )
    record = json.loads(open(paths.elastic_arm_record(str(directory), "ticket")).read())
    assert record["start_step"] == 2 and record["training"]["steps"] == 4 - 2
    # counts of the transformed mask (extra copies repeat their source's)
    assert result["arms"]["permute_copies"]["fraction_remaining"] == pytest.approx(
        result["arms"]["ticket"]["fraction_remaining"]
    )
    # resumable: a finished request trains nothing; `report` reads the folder
    assert cli.main(args) == 0
    assert "skipping permute_copies" in capsys.readouterr().out
    assert cli.main(["report", str(directory)]) == 0
    assert "permute_copies" in capsys.readouterr().out
    points = elastic_runs.points(str(directory))
    assert [p["phase"] for p in points] == ["permute_copies", "ticket"]


@pytest.fixture
def fake_run(tmp_path):
    """A run folder with an untrained pruned round 1 (no training: fast), made
    before manifests (no identity.json), so its rounds are read unverified."""
    import keras

    from keras_lottery import models, pruning
    from keras_lottery.config import load_config

    directory = tmp_path / "imp_fake"
    (directory / "round_001").mkdir(parents=True)
    config = load_config(
        None,
        [
            f"data.path={write_tiny_dataset(tmp_path)}",
            "data.name=tiny",
            "model.name=cifar_resnet",
            "model.options={depth: 14, width: 2}",
            "data.validation_size=10",
            "training.batch_size=20",
            "training.duration=1ep",
            "baselines=[]",
        ],
    )
    (directory / "config.yaml").write_text(config.to_yaml())
    keras.utils.set_random_seed(0)
    model = models.get(
        "cifar_resnet", num_classes=2, input_shape=(6, 6, 1), depth=14, width=2
    )
    pruning.prune_magnitude(model, 0.5)
    Ticket.from_model(model, rewind_iterations=2, rewind="2it").save(
        paths.round_ticket(str(directory), 1)
    )
    (directory / "round_000").mkdir()  # rounds before the chosen one must exist
    for r, remaining in ((0, 1.0), (1, 0.5)):
        record = {"round": r, "fraction_remaining": remaining}
        (directory / f"round_{r:03d}" / "record.json").write_text(json.dumps(record))
    return directory


@pytest.mark.backend_neutral
def test_elastic_cli_errors_write_nothing(fake_run, tmp_path, capsys):
    out = tmp_path / "elastic_out"
    base = ["elastic", str(fake_run), "--round", "1", "--out", str(out)]
    for extra, message in [
        (["--to", "vgg16"], "Cannot build the target 'vgg16'"),
        (["--to", "lenet_300_100"], "lenet family"),
        (["--to", "cifar_resnet_20", "--map", "1:1"], "not filled"),
        (["--to", "cifar_resnet_20", "--map", "1:1;4:2"], "do not exist"),
        (["--to", "nope"], "Unknown target model 'nope'"),
    ]:
        assert cli.main(base + extra) == 2
        assert message in capsys.readouterr().err, extra
    for extra, message in [
        (["--to", "cifar_resnet_20", "--map", "1:1", "--strategy", "head"], "not al"),
        (["--to", "cifar_resnet_20", "--control", "nope"], "invalid choice"),
    ]:
        with pytest.raises(SystemExit):
            cli.main(base + extra)
        assert message in capsys.readouterr().err, extra
    assert not out.exists()


def _fake_elastic_folder(directory):
    """An elastic run folder's files as run_elastic writes them (no training)."""
    spec = {
        "source_run": "imp_abc",
        "round": 3,
        "target": "cifar_resnet_32",
        "map": "0:0;1:1,2;2:3,4",
        "seed": 0,
        "strategy": "inter",
        "source_fraction_remaining": 0.176,
    }
    (directory / "arms").mkdir(parents=True)
    (directory / "elastic.json").write_text(json.dumps(spec))
    for arm, accuracy in (("ticket", 0.8), ("random_prune", 0.7)):
        (directory / "arms" / arm).mkdir()
        record = {
            "arm": arm,
            "seed": 0,
            "start_step": 36,
            "steps_per_epoch": 36,
            "fraction_remaining": 0.18,
            "training": {"steps": 36 * 19, "test": {"accuracy": accuracy}},
        }
        (directory / "arms" / arm / "record.json").write_text(json.dumps(record))
    return directory


@pytest.mark.backend_neutral
def test_report_and_compare_read_elastic_folders(tmp_path, capsys):
    directory = _fake_elastic_folder(tmp_path / "elastic_0123456789ab")
    assert cli.main(["report", str(directory)]) == 0
    table = capsys.readouterr().out
    assert "imp_abc round 3 -> cifar_resnet_32 (map 0:0;1:1,2;2:3,4" in table
    assert "ticket" in table and "0.8000" in table and "19.0" in table
    assert cli.main(["compare", str(directory), "--out", str(tmp_path / "cmp")]) == 0
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    (run,) = data["runs"]
    assert run["method"] == "elastic"
    assert run["label"] == "E-LTH imp_abc -> cifar_resnet_32"
    assert {(p["phase"], p["accuracy"], p["epochs"]) for p in run["points"]} == {
        ("ticket", 0.8, 19.0),
        ("random_prune", 0.7, 19.0),
    }
    assert (tmp_path / "cmp" / "comparison.png").exists()


# TensorFlow only, to spare the JAX lane a ResNet compile (the slow end-to-end
# test above is backend-neutral).
def test_elastic_trains_from_k_and_resumes(fake_run, tmp_path, capsys):
    from keras_lottery.runs.elastic import run_elastic

    out = str(tmp_path / "elastic_out")
    directory = run_elastic(str(fake_run), 1, "cifar_resnet_20", out=out, verbose=0)
    record = json.loads(open(paths.elastic_arm_record(directory, "ticket")).read())
    assert record["start_step"] == 2 and record["training"]["steps"] == 4 - 2
    assert record["training"]["test"]["accuracy"] is not None
    result = json.loads(open(paths.result(directory)).read())
    assert result["arms"].keys() == {"ticket"}
    assert result["spec"]["map"] == "0:0;1:1,2" and result["spec"]["round"] == 1
    first = open(paths.elastic_arm_record(directory, "ticket")).read()
    again = run_elastic(str(fake_run), 1, "cifar_resnet_20", out=out)
    assert again == directory  # same request, same folder; nothing retrained
    assert "skipping ticket" in capsys.readouterr().out
    assert open(paths.elastic_arm_record(directory, "ticket")).read() == first
    args = ["instability", directory, "--pairs", "1", "--points", "3"]
    assert cli.main(args + ["--round", "1"]) == 2  # one ticket: no rounds
    assert "leave out --round" in capsys.readouterr().err
    assert cli.main(["instability", str(fake_run)]) == 2
    assert "Give --round" in capsys.readouterr().err


@pytest.mark.slow  # two more ResNet-20 trainings and 3 x 2 evaluations (~20 s)
def test_instability_of_an_elastic_ticket_at_k(fake_run, tmp_path):
    """The transformed ticket's instability at k, by the same command as IMP's."""
    from keras_lottery.runs.elastic import run_elastic

    out = str(tmp_path / "elastic_out")
    directory = run_elastic(str(fake_run), 1, "cifar_resnet_20", out=out, verbose=0)
    args = ["instability", directory, "--pairs", "1", "--points", "3"]
    assert cli.main(args) == 0
    summary = json.loads(open(paths.elastic_instability_json(directory)).read())
    assert summary["start_step"] == 2 and len(summary["pairs"]) == 1
    assert summary["target"] == "cifar_resnet_20" and summary["map"] == "0:0;1:1,2"
    assert len(summary["mean_curves"]["test"]["alphas"]) == 3
    report = open(paths.report(directory)).read()
    assert "instability of the ticket at k (test)" in report
    assert elastic_runs.summarize(directory)["instability"]["test"]["stable"] in (
        True,
        False,
    )
