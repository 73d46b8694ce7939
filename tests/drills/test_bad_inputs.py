"""Drill: every bad config and data file of issue 20 through ``keras-lottery
run``: exit status 2, a message naming the key or file and the problem, and no
run folder left behind (every check runs before the folder is created)."""

import numpy as np
import pytest

from keras_lottery import cli
from tests.conftest import write_tiny_config

CS = ["method=cs", "cs.layers=all", "cs.rounds=1", "baselines=[]"]

#: (overrides of the tiny IMP config, start of the expected message)
BAD_CONFIGS = [
    (["training.duration=abc"], "'training.duration' must be a step like '500it'"),
    (["training.duration=0"], "'training.duration' must be a string; got int 0."),
    (["training.milestones=[abc]"], "'training.milestones' must be a step like"),
    (["training.warmup=-5"], "'training.warmup' must be a string"),
    (["pruning.rewind=-5"], "'pruning.rewind' must be a step like '500it'"),
    (["pruning.rewind=abc"], "'pruning.rewind' must be a step like '500it'"),
    (["pruning.rewind=100ep"], "'pruning.rewind' (100ep = 500 iterations) must come"),
    (["seed=-1"], "'seed' must be an int >= 0; got -1."),
    (["pruning.fraction=1.5"], "'pruning.fraction' must be a number in (0, 1)"),
    (["pruning.rounds=0"], "'pruning.rounds' must be null or an int >= 1; got 0."),
    (["pruning.rounds=30"], "'pruning.rounds' = 30 at 'pruning.fraction' 0.5"),
    (["pruning.rounds=2", "pruning.target_sparsity=0.5"], "Give exactly one of"),
    (["pruning.layers=[nope]"], "pruning.layers: Unknown masked layer name(s)"),
    (["pruning.exclude=[nope]"], "pruning.exclude: Unknown masked layer name(s)"),
    (["pruning.layer_fractions={nope: 0.1}"], "pruning.layer_fractions key 'nope'"),
    (
        ["pruning.evaluate_at=best", "data.validation_size=0"],
        "'pruning.evaluate_at: best' picks the epoch of lowest validation loss",
    ),
    (["model.name=nope"], "Unknown model 'nope'."),
    (["model.options={bogus: 1}"], "'model.options' {'bogus': 1} do not fit model"),
    (["training.batch_size=0"], "'training.batch_size' must be an int >= 1; got 0."),
    (["training.learning_rate=0"], "'training.learning_rate' must be a number > 0"),
    (["baselines=[nope]"], "'baselines' must be names from"),
    (["data.order_seed=-1"], "'data.order_seed' must be null or an int >= 0"),
    (["data.validation_size=100000"], "data.validation_size=100000 must be in [0, 90)"),
    (["data.path=/nonexistent.npz"], "Dataset file /nonexistent.npz does not exist."),
    (["pruning.rounds=[1"], "Override 'pruning.rounds=[1': the value is not valid"),
    (
        [*CS, "training.duration=1ep"],
        "'training.duration' must cover at least 2 epochs",
    ),
    ([*CS, "cs.rewind=100ep"], "'cs.rewind' (100ep = 500 iterations) must come"),
    ([*CS, "cs.rewind=-5"], "'cs.rewind' must be a step like '500it'"),
    ([*CS, "cs.rounds=0"], "'cs.rounds' must be an int >= 1; got 0."),
]


def _run(config, out, overrides, capsys) -> str:
    argv = ["run", str(config), "--out", str(out)]
    for override in overrides:
        argv += ["--set", override]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-lottery: error: ")
    assert not out.exists() or not any(out.iterdir()), "a run folder was created"
    return err.removeprefix("keras-lottery: error: ")


@pytest.mark.parametrize(
    "overrides,message", BAD_CONFIGS, ids=[" ".join(c[0]) for c in BAD_CONFIGS]
)
def test_bad_config_is_refused_before_the_run_folder(
    overrides, message, tmp_path, capsys
):
    config = write_tiny_config(tmp_path)
    assert _run(config, tmp_path / "runs", overrides, capsys).startswith(message)


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "pruning: {fraction: 1.5, rounds: 2}\n",
            "'pruning.fraction' must be a number",
        ),
        ("pruning:\n  rounds: [1\n", "is not a valid YAML config at line 3"),
        ("\x00\x01garbage: [", "is not a valid YAML config"),
        ("- a\n- b\n", "the top level must be a mapping of sections."),
        ("prunning: {rounds: 2}\n", "Unknown config key(s): prunning."),
    ],
)
def test_bad_yaml_file_is_refused_naming_it(text, message, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    err = _run(config, tmp_path / "runs", [], capsys)
    assert message in err
    if "YAML" in message:
        assert err.startswith(f"{config} is not a valid YAML config")


def _arrays(n=120, shape=(6, 6), classes=2):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, n)
    return {"x_train": x[:90], "y_train": y[:90], "x_test": x[90:], "y_test": y[90:]}


def _label(arrays, index, value, dtype=None):
    y = arrays["y_train"].astype(dtype or arrays["y_train"].dtype)
    y[index] = value
    return {**arrays, "y_train": y}


def _nan(arrays):
    x = arrays["x_train"].astype("float32") / 255
    x[3, 2, 2] = np.nan
    return {**arrays, "x_train": x}


#: (arrays, data.name, start of the expected message after the file's path)
BAD_DATA = [
    (_label(_arrays(shape=(28, 28)), 0, 12), "mnist", "labels must be in [0, 10)"),
    (_label(_arrays(), 5, 3.7, "float32"), "tiny", "y_train holds 1 label(s) that"),
    (_label(_arrays(), 7, -1), "tiny", "y_train holds negative label(s) (min -1)"),
    (_nan(_arrays()), "tiny", "x_train holds 1 NaN or infinite value(s)."),
    (_arrays(shape=(32, 32, 3)), "mnist", "images are (32, 32, 3), but data.name="),
    (_arrays(shape=(28, 28)), "cifar10", "images are (28, 28, 1), but data.name="),
    (
        {**_arrays(), "y_train": _arrays()["y_train"][:89]},
        "tiny",
        "x_train/y_train lengths differ: 90 images but labels shaped (89,)",
    ),
    (
        {**_arrays(), "x_test": np.zeros((30, 7, 7), np.uint8)},
        "tiny",
        "training images are (6, 6, 1) but test images are (7, 7, 1).",
    ),
    (
        {**_arrays(), "y_test": np.array(["a"] * 30)},
        "tiny",
        "y_test must hold integer class indices",
    ),
    (
        {k: v for k, v in _arrays().items() if k != "y_test"},
        "tiny",
        "lacks the key(s) ['y_test']",
    ),
]


@pytest.mark.parametrize(
    "arrays,name,message",
    BAD_DATA,
    ids=[
        "label 12 of 10",
        "float label 3.7",
        "negative label",
        "NaN input",
        "cifar file as mnist",
        "mnist file as cifar10",
        "x/y lengths",
        "train/test shapes",
        "string labels",
        "missing key",
    ],
)
def test_bad_data_is_refused_naming_the_file(arrays, name, message, tmp_path, capsys):
    config = write_tiny_config(tmp_path)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    err = _run(
        config, tmp_path / "runs", [f"data.path={path}", f"data.name={name}"], capsys
    )
    assert err.startswith(f"{path}") and message in err, err


def test_whole_number_float_labels_are_accepted(tmp_path):
    from keras_lottery.config import DataConfig
    from keras_lottery.data import load_dataset

    arrays = _arrays()
    path = tmp_path / "float.npz"
    np.savez(path, **{**arrays, "y_train": arrays["y_train"].astype("float64")})
    splits = load_dataset(DataConfig(name="tiny", path=str(path), validation_size=10))
    assert splits.y_train.dtype == np.int32 and splits.num_classes == 2


def test_default_validation_size_too_large_for_small_data(tmp_path, capsys):
    config = write_tiny_config(tmp_path)
    text = config.read_text().replace(", validation_size: 10", "")
    config.write_text(text)
    err = _run(config, tmp_path / "runs", [], capsys)
    assert err.startswith("data.validation_size=5000 must be in [0, 90) for ")


def test_garbage_dataset_file_is_a_corrupt_file_error(tmp_path, capsys):
    config = write_tiny_config(tmp_path)
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"\x93NUMPY garbage" * 10)
    err = _run(config, tmp_path / "runs", [f"data.path={path}"], capsys)
    assert err.startswith(f"{path} is not a valid file: expected a dataset .npz")
