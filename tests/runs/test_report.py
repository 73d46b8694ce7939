"""keras_lottery.runs.report: reports of run folders, the method read from
``config.yaml``, and run folders of earlier versions (same file names)."""

import json
import re

import pytest

from keras_lottery import cli
from keras_lottery.config import RunConfig
from keras_lottery.manifest import finish_phase
from keras_lottery.runs import branches, report
from keras_lottery.ticket import Ticket

# A run folder as keras_lottery 0.1.0 wrote it: these names are a file format
# (docs/design.md); a renamed file would orphan every existing run.
RUN_FOLDER_FILES = {
    "config.yaml",
    "result.json",
    "report.txt",
    "accuracy_vs_weights.png",
    "rewind_state.npz",
    "round_000/record.json",
    "round_000/ticket.npz",
    "round_000/trained.npz",
    "round_001/record.json",
    "round_001/ticket.npz",
    "round_001/trained.npz",
    # Added with manifests (docs/reliability.md); the names above are unchanged.
    ".lock",
    "identity.json",
    "round_000/manifest.json",
    "round_001/manifest.json",
}


def _files(directory):
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


@pytest.mark.backend_neutral
def test_method_of_reads_config_yaml(tmp_path):
    (tmp_path / "config.yaml").write_text(RunConfig(method="cs").to_yaml())
    # result.json does not decide (it is written last, and may be absent).
    (tmp_path / "result.json").write_text(json.dumps({"method": "imp"}))
    assert report.method_of(str(tmp_path)) == "cs"
    (tmp_path / "config.yaml").write_text(RunConfig().to_yaml())
    assert report.method_of(str(tmp_path)) == "imp"


@pytest.mark.backend_neutral
def test_a_folder_without_config_yaml_is_named_in_the_error(tmp_path, capsys):
    folder = tmp_path / "not_a_run"
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps({"method": "imp"}))
    message = re.escape(f"{folder} is not a run folder (no config.yaml)")
    for read in (report.method_of, report.summary, report.write_report):
        with pytest.raises(FileNotFoundError, match=message):
            read(str(folder))
    assert not (folder / "report.txt").exists()
    assert cli.main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "config.yaml" in err


def test_a_run_folder_keeps_the_file_names_of_earlier_versions(imp_run, capsys):
    assert _files(imp_run) == RUN_FOLDER_FILES
    assert report.method_of(str(imp_run)) == "imp"
    result = json.loads((imp_run / "result.json").read_text())
    summary = report.summary(str(imp_run))
    assert summary == {k: v for k, v in result.items() if k != "config"}
    # Reports are derived files: deleted, `keras-lottery report` writes them again.
    table = (imp_run / "report.txt").read_text()
    (imp_run / "report.txt").unlink()
    (imp_run / "accuracy_vs_weights.png").unlink()
    assert cli.main(["report", str(imp_run)]) == 0
    assert capsys.readouterr().out.strip() == table.strip()
    assert (imp_run / "report.txt").read_text() == table
    assert (imp_run / "accuracy_vs_weights.png").stat().st_size > 1000
    # Branches start from the saved rounds.
    saved = branches.load_round(str(imp_run), 1)
    ticket = Ticket.load(imp_run / "round_001" / "ticket.npz")
    assert saved.ticket.masks.keys() == ticket.masks.keys()
    assert saved.record == result["rounds"][1]


@pytest.mark.backend_neutral
def test_branch_results_join_their_rounds(imp_run):
    rounds = report.summary(str(imp_run))["rounds"]
    assert "random_reinit" in rounds[1]["baselines"]  # IMP trained it itself
    for kind, seed, accuracy in (
        ("random_reinit", 0, 0.25),
        ("shuffle_masks", 0, 0.5),
        ("shuffle_masks", 3, 0.75),
    ):
        path = imp_run / "branches" / "round_001" / kind / f"seed_{seed}"
        path.mkdir(parents=True)
        record = {"kind": kind, "seed": seed, "round": 1, "training": {}}
        record["training"]["test"] = {"accuracy": accuracy}
        finish_phase(path, [], record)  # record.json and its manifest
    assert report.summary(str(imp_run))["rounds"] == rounds  # without branches
    joined = report.summary(str(imp_run), branches=True)["rounds"]
    assert joined[0] == rounds[0]
    baselines = joined[1]["baselines"]
    assert baselines["random_reinit"] == rounds[1]["baselines"]["random_reinit"]
    assert baselines["random_reinit_branch"] == {"test": {"accuracy": 0.25}}
    assert baselines["shuffle_masks"] == {"test": {"accuracy": 0.5}}
    assert baselines["shuffle_masks_s3"] == {"test": {"accuracy": 0.75}}
    header = report.write_report(str(imp_run)).splitlines()[0]
    for name in ("random_reinit_branch", "shuffle_masks", "shuffle_masks_s3"):
        assert f"{name} accuracy" in header
