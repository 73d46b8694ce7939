"""The GPU study's NumPy feeding (benchmarks/device) and the TensorFlow-free import
path it relies on."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(__file__))
DEVICE = os.path.join(ROOT, "benchmarks", "device")


@pytest.fixture(scope="module")
def study():
    sys.path.insert(0, DEVICE)
    try:
        import rewinding_study

        yield rewinding_study
    finally:
        sys.path.remove(DEVICE)


def _batches(study, seed=0, n=10):
    x = np.arange(n * 4 * 4 * 3, dtype=np.float32).reshape(n, 4, 4, 3) / 1000
    y = np.arange(n, dtype=np.int32)
    mean, std = np.array([0.1, 0.2, 0.3]), np.array([2.0, 2.0, 4.0])
    return study.AugmentedBatches(x, y, 4, mean, std, seed, padding=1), x


@pytest.mark.backend_neutral
def test_batches_cover_an_epoch_once_with_crops_inside_the_padding(study):
    batches, x = _batches(study)
    assert len(batches) == 3
    labels = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert sorted(labels) == list(range(10))  # a permutation, last batch smaller
    images, labels = batches[0]
    assert images.shape == (4, 4, 4, 3) and images.dtype == np.float32
    raw = images * np.array([2.0, 2.0, 4.0]) + np.array([0.1, 0.2, 0.3])
    for image, label in zip(raw, labels, strict=True):
        padded = np.pad(x[label], ((1, 1), (1, 1), (0, 0)))
        windows = [
            padded[t : t + 4, c : c + 4][:, ::flip]
            for t in range(3)
            for c in range(3)
            for flip in (1, -1)
        ]
        assert any(np.allclose(image, w, atol=1e-6) for w in windows)


@pytest.mark.backend_neutral
def test_batches_are_a_pure_function_of_seed_and_epoch(study):
    first, _ = _batches(study, seed=3)
    again, _ = _batches(study, seed=3)
    np.testing.assert_array_equal(first[1][0], again[1][0])
    epoch0 = first[0][0].copy()
    first.on_epoch_end()
    assert not np.array_equal(first[0][0], epoch0)
    other, _ = _batches(study, seed=4)
    assert not np.array_equal(other[0][0], epoch0)


def test_the_core_and_data_loading_import_without_tensorflow(tmp_path):
    """The device machine has JAX but no TensorFlow: the config, the registry
    models, array datasets and the IMP runner must import there; only the
    tf.data pipelines need TensorFlow."""
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            class _NoTensorFlow:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("tensorflow", "tensorboard"):
                        raise ModuleNotFoundError(f"No module named {name!r}")

            sys.meta_path.insert(0, _NoTensorFlow())
            """
        )
    )
    code = textwrap.dedent(
        """
        import json, sys
        import keras_lottery
        from keras_lottery.data import load_dataset
        from keras_lottery.config import load_config
        from keras_lottery.recipes import Recipe
        from keras_lottery.runs import runner
        from keras_lottery.runs import elastic  # the elastic study's driver
        config = load_config(None, ["data.name=digits", "data.validation_size=180"])
        recipe = Recipe(config)
        try:
            keras_lottery.data.pipelines
            error = None
        except ImportError as e:
            error = str(e)
        print(json.dumps({"train": len(recipe.splits.x_train), "error": error,
                          "tf": "tensorflow" in sys.modules}))
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=f"{tmp_path}:{ROOT}")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["train"] == 1257 and out["tf"] is False  # digits: 1,437 - 180
    assert "tensorflow" in out["error"]


@pytest.mark.backend_neutral
def test_the_elastic_study_summarizes_imp_rounds_and_elastic_arms(tmp_path):
    """elastic_study.py summarize on a study folder laid out as the script and
    the library write it (the full pipeline runs on the device machine; its
    tiny CPU rehearsal is in docs/elastic.md)."""
    sys.path.insert(0, DEVICE)
    try:
        import elastic_study
    finally:
        sys.path.remove(DEVICE)
    imp = tmp_path / "imp" / "imp_aaa"
    (imp / "round_000").mkdir(parents=True)
    (imp / "round_001").mkdir()
    (imp / "config.yaml").write_text("model: {name: cifar_resnet_20}\nseed: 2\n")
    for r, remaining in ((0, 1.0), (1, 0.56)):
        record = {
            "round": r,
            "fraction_remaining": remaining,
            "ticket": {
                "test": {"accuracy": 0.5 + r / 10},
                "epochs": 20,
                "wall_time": 3,
            },
        }
        (imp / f"round_00{r}" / "record.json").write_text(json.dumps(record))
    arm = tmp_path / "elastic" / "elastic_bbb" / "arms" / "permute_copies"
    arm.mkdir(parents=True)
    spec = {
        "source_run": "imp_aaa",
        "round": 1,
        "target": "cifar_resnet_32",
        "map": "0:0;1:1,2;2:3,4",
        "source_fraction_remaining": 0.56,
    }
    (arm.parent.parent / "elastic.json").write_text(json.dumps(spec))
    record = {
        "arm": "permute_copies",
        "fraction_remaining": 0.55,
        "steps_per_epoch": 36,
        "training": {"steps": 684, "test": {"accuracy": 0.4}, "wall_time": 5.0},
    }
    (arm / "record.json").write_text(json.dumps(record))
    summary = elastic_study.summarize(str(tmp_path))
    (run,) = summary["imp"]
    assert run["model"] == "cifar_resnet_20" and run["seed"] == 2
    assert [r["test_accuracy"] for r in run["rounds"]] == [0.5, 0.6]
    assert run["epochs_total"] == 40
    (transformed,) = summary["elastic"]
    assert transformed["source_model"] == "cifar_resnet_20"
    assert transformed["seed"] == 2
    assert transformed["arms"]["permute_copies"] == {
        "remaining": 0.55,
        "test_accuracy": 0.4,
        "epochs": 19.0,
        "wall_time": 5.0,
    }
    script = os.path.join(DEVICE, "elastic_study.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0


def test_the_elastic_study_table_pairs_arms_with_the_target_imp_ticket():
    sys.path.insert(0, DEVICE)
    try:
        import elastic_study
    finally:
        sys.path.remove(DEVICE)

    def rounds(dense, ticket):
        return [
            {
                "round": 0,
                "remaining": 1.0,
                "test_accuracy": dense,
                "epochs": 8,
                "wall_time": 100.0,
            },
            {
                "round": 1,
                "remaining": 0.2,
                "test_accuracy": ticket,
                "epochs": 7,
                "wall_time": 90.0,
            },
        ]

    summary = {
        "imp": [
            {"model": "r20", "seed": 0, "rounds": rounds(0.60, 0.62)},
            {"model": "r32", "seed": 0, "rounds": rounds(0.70, 0.66)},
            {"model": "r32", "seed": 1, "rounds": rounds(0.72, 0.70)},
        ],
        "elastic": [
            {
                "source_model": "r20",
                "target": "r32",
                "seed": seed,
                "arms": {"ticket": {"remaining": 0.2, "test_accuracy": acc}},
            }
            for seed, acc in ((0, 0.69), (1, 0.69))
        ],
    }
    lines = elastic_study.table(summary).splitlines()
    assert lines[0] == "### r20 -> r32"
    assert "| E-LTH ticket | 20.0% | 69.0 ± 0.0 (n=2) | +1.0 [-1.0, +3.0] |" in lines
    assert "| target dense | 100.0% | 71.0 ± 1.4 (n=2) | +3.0 [+2.0, +4.0] |" in lines
    assert "| target IMP ticket | 20.0% | 68.0 ± 2.8 (n=2) |  |" in lines
    assert "| IMP on the target | 8 on r32 | 100 |" in lines
    assert "| E-LTH (the source's IMP) | 8 on r20 | 100 |" in lines


def _fake_cifar(path, n_train=64, n_test=16):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 255, (n_train, 32, 32, 3)).astype("uint8"),
        y_train=rng.integers(0, 10, n_train).astype("uint8"),
        x_test=rng.integers(0, 255, (n_test, 32, 32, 3)).astype("uint8"),
        y_test=rng.integers(0, 10, n_test).astype("uint8"),
    )


def _no_tensorflow_env(tmp_path):
    """JAX on CPU with TensorFlow hidden, as on the device machine."""
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            class _NoTensorFlow:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("tensorflow", "tensorboard"):
                        raise ModuleNotFoundError(f"No module named {name!r}")

            sys.meta_path.insert(0, _NoTensorFlow())
            """
        )
    )
    return dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=false",
        PYTHONPATH=f"{tmp_path}:{ROOT}",
        PATH=f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
    )


def _check_step_time(entry, model):
    assert entry["model"] == model and entry["policy"] == "mixed_bfloat16"
    assert entry["jit_compile"] is True and entry["repeats"] == 2
    assert set(entry["ms_per_step"]) == {"plain", "plain_repeat", "masked"}
    assert all(v > 0 for v in entry["ms_per_step"].values())
    assert entry["ratio_masked_over_plain"] > 0 and entry["noise_ratio"] > 0


def test_the_device_check_times_masked_and_plain_without_tensorflow(tmp_path):
    """The tiny CPU rehearsal of benchmarks/device/device_check.py (LeNet-300-100 timed
    in place of the ResNets, no drivers: the slow test below runs those)."""
    out = tmp_path / "check.json"
    command = [
        sys.executable,
        os.path.join(DEVICE, "device_check.py"),
        "--tiny",
        "--tiny-model=lenet_300_100",
        "--models",
        "resnet20",
        "--drivers",
        f"--json={out}",
        f"--runs={tmp_path / 'runs'}",
    ]
    result = subprocess.run(
        command, env=_no_tensorflow_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    check = json.loads(out.read_text())
    assert check["errors"] == {}, check["errors"]
    assert check["versions"]["backend"] == "jax"
    assert check["versions"]["tensorflow_importable"] is False
    assert check["device"]["platform"] == "cpu"
    _check_step_time(check["step_time"]["resnet20"], "lenet_300_100")
    assert check["drivers"] == {} and "resnet50" not in check["step_time"]


@pytest.mark.slow
def test_the_device_check_script_rehearses_every_section_on_cpu(tmp_path):
    """benchmarks/device_check.sh end to end with TINY=1: both ResNets timed at
    tiny sizes, one IMP round and one CS search round (about 2.5 min on CPU)."""
    _fake_cifar(tmp_path / "cifar.npz")
    env = _no_tensorflow_env(tmp_path)
    env.update(
        TINY="1",
        INSTALL_WHEELS="0",
        OUT=str(tmp_path / "out"),
        DATA=str(tmp_path / "cifar.npz"),
    )
    script = os.path.join(ROOT, "benchmarks", "device_check.sh")
    result = subprocess.run(
        ["bash", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:]
    check = json.loads((tmp_path / "out" / "device_check.json").read_text())
    assert check["errors"] == {}, check["errors"]
    _check_step_time(check["step_time"]["resnet20"], "cifar_resnet_20")
    _check_step_time(check["step_time"]["resnet50"], "resnet50")
    imp = check["drivers"]["imp"]
    assert [r["phase"] for r in imp["records"]] == ["round_000", "round_001"]
    assert imp["records"][1]["fraction_remaining"] == pytest.approx(0.8, abs=1e-3)
    assert [r["phase"] for r in check["drivers"]["cs"]["records"]] == [
        "search_000",
        "ticket",
    ]


def test_the_device_scripts_share_one_environment_set_up(tmp_path):
    """benchmarks/device/setup_env.sh, sourced by every device script: this
    checkout on PYTHONPATH, JAX selected, what the machine has in device.txt."""
    script = (
        "OUT=$1; INSTALL_WHEELS=0; source benchmarks/device/setup_env.sh >/dev/null; "
        'echo "$KERAS_BACKEND|$PYTHONPATH|$JAX_COMPILATION_CACHE_DIR"'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.pop("KERAS_BACKEND", None)
    env["PY"] = sys.executable
    result = subprocess.run(
        ["bash", "-c", script, "setup", str(tmp_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"jax|{ROOT}|/tmp/jaxcache"
    device = (tmp_path / "device.txt").read_text()
    assert "keras 3." in device and "jax" in device
    for name in (
        "device_check.sh",
        "device/rewinding_study.sh",
        "device/elastic_study.sh",
    ):
        text = open(os.path.join(ROOT, "benchmarks", name)).read()
        assert "source benchmarks/device/setup_env.sh" in text, name
