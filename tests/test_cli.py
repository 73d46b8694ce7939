import json
import os

import numpy as np
import pytest

from keras_lottery import cli, models
from keras_lottery.ticket import Ticket


def test_run_report_and_idempotent_rerun(tiny_config, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main(["run", str(tiny_config), "--out", str(out)]) == 0
    (run_dir,) = list(out.iterdir())
    assert run_dir.name.startswith("imp_")
    for name in (
        "config.yaml",
        "result.json",
        "report.txt",
        "accuracy_vs_weights.png",
        "rewind_state.npz",
        "round_002/ticket.npz",
    ):
        assert (run_dir / name).exists(), name
    printed = capsys.readouterr().out
    # One summary line per round; layerwise 50% on fc1 (288) and fc2 (32), 25% on
    # the output layer (8): round 2 keeps 72 + 8 + 4 (round(4.5)) of 328 = 25.61%.
    assert "round 2 | 25.61% weights remaining" in printed
    assert "random_reinit accuracy" in printed
    mtime = os.path.getmtime(run_dir / "result.json")
    assert cli.main(["run", str(tiny_config), "--out", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out
    assert os.path.getmtime(run_dir / "result.json") == mtime
    assert cli.main(["report", str(run_dir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["round", "remaining", "ticket"] and len(table) == 4


def test_overrides_change_the_run_folder(tiny_config, tmp_path, capsys):
    assert cli.main(["run", str(tiny_config), "--print-config"]) == 0
    first = capsys.readouterr().out.splitlines()[-1]
    assert cli.main(["run", str(tiny_config), "--set", "seed=1", "--print-config"]) == 0
    second = capsys.readouterr().out.splitlines()[-1]
    assert first != second and "run folder" in first


def test_config_errors_exit_2_with_a_message(tiny_config, capsys):
    assert cli.main(["run", str(tiny_config), "--set", "pruning.fractoin=0.3"]) == 2
    err = capsys.readouterr().err
    assert "pruning.fractoin" in err and "fraction" in err
    assert cli.main(["run", str(tiny_config), "--set", "model.name=resnet9000"]) == 2
    assert "Unknown model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override,key",
    [
        ("pruning.fraction=1.5", "'pruning.fraction' must be a number in (0, 1)"),
        ("training.batch_size=0", "training.batch_size"),
        ("pruning.layer_fractions={nope: 0.1}", "pruning.layer_fractions key 'nope'"),
        ("pruning.layer_fractions={output: 2}", "pruning.layer_fractions"),
    ],
)
def test_bad_values_exit_2_before_any_run_folder(
    tiny_config, tmp_path, capsys, override, key
):
    out = tmp_path / "runs"
    args = ["run", str(tiny_config), "--set", override, "--out", str(out)]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("keras-lottery: error:")
    assert key in captured.err
    assert not out.exists()
    sweep = ["sweep", str(tiny_config), "--set", override, "--out", str(out)]
    if "nope" not in override:  # config values: the sweep checks every setting
        assert cli.main(sweep + ["--grid", "seed=[0, 1]"]) == 2
        assert key in capsys.readouterr().err
        assert not out.exists()


def test_run_with_augmentation_and_normalization(tiny_config, tmp_path):
    out = tmp_path / "runs"
    overrides = ["data.augment=flip", "data.normalize=true", "pruning.rounds=1"]
    args = ["run", str(tiny_config), "--out", str(out)]
    assert cli.main(args + [x for o in overrides for x in ("--set", o)]) == 0
    (run_dir,) = list(out.iterdir())
    record = json.loads((run_dir / "round_001" / "record.json").read_text())
    assert record["ticket"]["steps"] == 2 * 5  # 80 examples / batch 16, 2 epochs
    correct = record["ticket"]["test"]["accuracy"] * 30  # 30 test images
    assert correct == pytest.approx(round(correct), abs=1e-4)
    saved = (run_dir / "config.yaml").read_text()
    assert "augment: flip" in saved and "normalize: true" in saved


# --------------------------------------------------------------------------- CS


@pytest.fixture
def cs_config(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (100, 8, 8, 3), dtype=np.uint8)
    y = (x[..., 0].reshape(100, -1).mean(axis=1) > 127).astype(np.int64)
    np.savez(
        tmp_path / "tiny.npz",
        x_train=x[:80],
        y_train=y[:80],
        x_test=x[80:],
        y_test=y[80:],
    )
    path = tmp_path / "cs.yaml"
    path.write_text(f"""
method: cs
data: {{name: tiny, path: {tmp_path / "tiny.npz"}, validation_size: 16}}
model: {{name: cifar_resnet, options: {{depth: 8, width: 4}}}}
training: {{optimizer: sgd, learning_rate: 0.05, momentum: 0.9, weight_decay: 1e-4,
           batch_size: 32, duration: 2ep, milestones: [1ep]}}
cs: {{rounds: 2, rewind: 1ep, penalty: 1e-4}}
baselines: []
""")
    return path


def test_cli_runs_a_cs_config_and_skips_it_when_finished(cs_config, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main(["run", str(cs_config), "--out", str(out)]) == 0
    (run_dir,) = list(out.iterdir())
    assert run_dir.name.startswith("cs_")
    for name in ("report.txt", "cs_search.png", "ticket.npz", "result.json"):
        assert (run_dir / name).exists(), name
    printed = capsys.readouterr().out
    assert "CS search round 1" in printed and "CS ticket (ticket)" in printed
    result = json.loads((run_dir / "result.json").read_text())
    assert result["method"] == "cs" and len(result["search"]) == 2
    assert result["ticket"]["epochs"] == {"search": 4, "ticket": 2, "total": 6}
    ticket = Ticket.load(run_dir / "ticket.npz")
    model = models.get(
        "cifar_resnet", num_classes=2, input_shape=(8, 8, 3), depth=8, width=4
    )
    ticket.apply(model)  # an ordinary ticket for the registry model
    cs_scope = models.pruning_scope(model, "cs")
    assert ticket.metadata["scope"] == cs_scope
    assert all(ticket.masks[n].all() for n in ticket.masks if n not in cs_scope)
    assert cli.main(["run", str(cs_config), "--out", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out


# --------------------------------------------------------------------------- startup


def _python(code: str) -> str:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def test_help_and_version_do_not_import_keras_or_tensorflow():
    # `--help` and `--version` must answer at once (measured: 0.14 s vs. 7.9 s
    # with TensorFlow imported first); importing Keras is what took the time.
    out = _python(
        "import sys\n"
        "from keras_lottery import cli\n"
        "for argv in (['--help'], ['--version'], ['run', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'keras', 'tensorflow', 'jax', 'numpy'}))\n"
    )
    assert "keras-lottery 0.1.0" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_every_positional_argument_has_help():
    import argparse

    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        for action in command._actions:
            if not action.option_strings:
                assert action.help, f"{name} {action.dest} has no help"


def test_a_negative_branch_seed_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(
            ["branch", "r", "--round", "1", "--kind", "shuffle_masks", "--seed", "-1"]
        )
    assert error.value.code == 2
    assert "--seed: must be an int >= 0; got '-1'" in capsys.readouterr().err
