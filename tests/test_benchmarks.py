"""The benchmark scripts keep working (small settings; no timing is asserted)."""

import argparse
import importlib
import json
import os
import sys

import numpy as np
import pytest

from keras_lottery import models

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, BENCHMARKS)
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(BENCHMARKS)


def test_paired_ratio_is_the_median_of_per_repeat_ratios(bench):
    harness = bench("_harness")
    assert harness.paired_ratio([2.0, 3.0, 2.2], [1.0, 2.0, 1.0]) == 2.0
    with pytest.raises(ValueError):
        harness.paired_ratio([1.0], [1.0, 2.0])


@pytest.fixture
def gc_calls(bench, monkeypatch):
    """The harness collects garbage before every timed call; in a test process
    with a large heap that costs seconds per call, so it is counted instead."""
    harness = bench("_harness")
    calls = []
    monkeypatch.setattr(harness.gc, "collect", lambda: calls.append(1))
    return calls


def test_interleaved_runs_everything_once_per_repeat_and_divides_by_units(
    bench, gc_calls
):
    harness = bench("_harness")
    calls = []

    def run(name, units):
        def go():
            calls.append(name)
            return units

        return go

    times = harness.interleaved({"a": run("a", 1), "b": run("b", 4)}, repeats=5)
    assert sorted(calls) == ["a"] * 5 + ["b"] * 5
    assert len(gc_calls) == 10  # before each timed call
    assert all(len(times[n][clock]) == 5 for n in "ab" for clock in ("wall", "cpu"))
    summary = harness.summarize(times, baseline="a")
    assert summary["a"]["wall"]["ratio_paired_median"] == 1.0
    assert set(summary["b"]["cpu"]) == {
        "median",
        "min",
        "ratio_of_medians",
        "ratio_paired_median",
    }


def test_ticket_size_measures_quarter_mask_bytes_and_shrinking_encodings(
    bench, tmp_path
):
    ticket_size = bench("ticket_size")
    out = tmp_path / "sizes.json"
    ticket_size.main(["--models", "lenet_300_100", "--json", str(out)])
    (lenet,) = json.loads(out.read_text())["models"]
    assert lenet["memory"]["mask_over_kernel"] == 0.25
    rows = lenet["sizes"]
    assert [r["measured_sparsity"] for r in rows] == [0.5, 0.9, 0.98]
    npz = [r["sparse_npz_over_dense"] for r in rows]
    assert npz == sorted(npz, reverse=True) and npz[-1] < 0.1


def test_masked_overhead_times_every_formulation(
    bench, tmp_path, gc_calls, monkeypatch
):
    masked_overhead = bench("masked_overhead")
    monkeypatch.setitem(masked_overhead.SETUPS["lenet"], "steps", 2)  # not 100
    out = tmp_path / "overhead.json"
    masked_overhead.main(["--models", "lenet", "--repeats", "1", "--json", str(out)])
    (lenet,) = json.loads(out.read_text())["models"]
    assert set(lenet["ms_per_step"]) == {
        "plain",
        "plain_repeat",
        "masked",
        "masked_where",
        "masked_custom_gradient",
    }
    assert lenet["mask_bytes_over_kernel_bytes"] == 0.25


def test_imp_bookkeeping_times_the_driver_a_run_builds(bench, tmp_path):
    imp_bookkeeping = bench("imp_bookkeeping")
    rng = np.random.default_rng(0)
    data = tmp_path / "mnist.npz"
    np.savez(  # 2,000 validation images (the workload's) + 48 to train on
        data,
        x_train=rng.integers(0, 256, (2048, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 2048),
        x_test=rng.integers(0, 256, (16, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 16),
    )
    args = argparse.Namespace(data=str(data), rounds=1, seed=3, scratch=str(tmp_path))
    config, _, model, imp, path, real = imp_bookkeeping.build_run("lenet", args)
    assert (path, real) == (str(data), True)
    # The lenet_mnist.yaml settings, as `keras-lottery run` resolves them.
    assert (imp.fraction, imp.rounds, imp.scope) == (0.2, 1, "layerwise")
    assert imp.layer_fractions == {"output": 0.1}
    assert imp.layers == models.pruning_scope(model, "paper")  # layers: paper
    assert imp.baselines == () and imp.seed == 3 and imp.evaluate_at == "best"
    assert imp.checkpoint_dir == os.path.join(str(tmp_path), "imp_lenet")
    assert config.training.duration == "8ep" and model.optimizer is not None


@pytest.mark.slow  # ~10 s: four models traced and timed
def test_gradual_overhead_times_pruning_in_fit_and_records_kept_counts(
    bench, tmp_path, gc_calls, monkeypatch
):
    gradual_overhead = bench("gradual_overhead")
    monkeypatch.setattr(gradual_overhead, "FREQUENCY", 2)  # not 100
    out = tmp_path / "gradual.json"
    args = ["--networks", "small_cnn", "--steps", "2", "--repeats", "1"]
    gradual_overhead.main(args + ["--json", str(out)])
    (cnn,) = json.loads(out.read_text())["models"]
    assert set(cnn["ms_per_step"]) == {"plain", "plain_repeat", "masked", "gradual"}
    assert cnn["layer_sizes"] == [144, 4608, 8000]
    # PolynomialDecay(0, 0.8, 0, 4, frequency=2): 70% sparsity at 2, 80% at 4.
    assert cnn["kept_per_prune_step"] == {
        "2": [43, 1382, 2400],
        "4": [29, 922, 1600],
    }


@pytest.mark.slow
def test_export_formats_measures_every_format(bench, tmp_path):
    export_formats = bench("export_formats")
    out = tmp_path / "export.json"
    args = ["--models", "lenet_300_100", "--sparsities", "0,0.9", "--repeats", "1"]
    export_formats.main([*args, "--target-ms", "1", "--json", str(out)])
    (lenet,) = json.loads(out.read_text())["results"]
    dense, sparse = lenet["rows"]
    assert sparse["litert_sparse_bytes"] <= 0.2 * dense["litert_sparse_bytes"]
    assert sparse["litert_sparse_ops"]["DENSIFY"] == 3  # unstructured: expanded
    for fmt in export_formats.TIMED:
        assert sparse[f"{fmt}_max_abs_diff"] < 1e-4
        assert lenet["latency"][f"{fmt}|0%|32"]["ratio_to_dense"] == 1.0


def test_tweaks_study_pairs_each_arm_with_vanilla_seed_by_seed(bench):
    study = bench("tweaks_study")
    assert study.arm_tweaks("swish+label_smoothing+kd") == [
        "swish",
        "label_smoothing",
        "kd",
    ]
    assert study.arm_tweaks("vanilla") == []
    arms = study.summarize({"vanilla": [0.90, 0.80, 0.70], "kd": [0.95, 0.80, 0.74]})
    assert "paired" not in arms["vanilla"]
    assert arms["vanilla"]["mean"] == pytest.approx(0.80)
    assert arms["vanilla"]["std"] == pytest.approx(0.10)
    paired = arms["kd"]["paired"]
    assert paired["differences"] == pytest.approx([0.05, 0.0, 0.04])
    assert paired["mean"] == pytest.approx(0.03)
    assert "kd" in study.format_table(arms) and "+3.00" in study.format_table(arms)
    with pytest.raises(ValueError, match="has 1 seeds"):
        study.summarize({"vanilla": [0.9, 0.8], "kd": [0.9]})


@pytest.mark.slow  # an IMP run and six retrainings: ~40 s on this machine
def test_tweaks_study_runs_end_to_end_on_a_tiny_setting(bench, tmp_path):
    from tests.conftest import write_tiny_config

    config = write_tiny_config(tmp_path)
    study = bench("tweaks_study")
    out = tmp_path / "study.json"
    data = tmp_path / "tiny.npz"
    result = study.main(
        [
            f"--data={data}",
            f"--config={config}",
            f"--out={tmp_path / 'runs'}",
            "--seeds=2",
            "--arms=vanilla,label_smoothing,kd",
            "--set=training.duration=2ep",
            "--set=pruning.rounds=1",
            "--set=pruning.layer_fractions={output: 0.25}",
            f"--json={out}",
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["round"] == 1 and saved["seeds"] == 2
    assert set(saved["arms"]) == {"vanilla", "label_smoothing", "kd"}
    for arm in ("label_smoothing", "kd"):
        assert len(saved["arms"][arm]["paired"]["differences"]) == 2
    assert result["fraction_remaining"] == saved["fraction_remaining"] < 1


def test_tweaks_table_pairs_each_arm_with_the_runs_own_ticket(bench, tmp_path, capsys):
    tweaks_table = bench("tweaks_table")
    for seed, (vanilla, kd) in enumerate(((0.50, 0.53), (0.60, 0.59))):
        run = tmp_path / f"imp_{seed}"
        (run / "round_001").mkdir(parents=True)
        (run / "config.yaml").write_text(f"seed: {seed}\n")
        record = {"ticket": {"test": {"accuracy": vanilla}}}
        (run / "round_001" / "record.json").write_text(json.dumps(record))
        arm = run / "retrain" / "round_001" / "retrain_kd" / "seed_0"
        arm.mkdir(parents=True)
        retrain = {"label": "kd", "training": {"test": {"accuracy": kd}}}
        (arm / "record.json").write_text(json.dumps(retrain))
        silent = arm.parent.parent / "retrain_gamma0" / "seed_0"
        silent.mkdir(parents=True)
        settings = {"tweaks": ["extra_skips"], "skip_bn_gamma": 0.0, "kd_alpha": 0.9}
        gamma0 = {"label": "extra_skips@ab12cd", "settings": settings}
        gamma0["training"] = {"test": {"accuracy": vanilla}}
        (silent / "record.json").write_text(json.dumps(gamma0))
    rows = tweaks_table.collect(str(tmp_path))
    assert rows["kd"] == {0: 0.53, 1: 0.59}
    assert rows["extra_skips (skip_bn_gamma=0.0)"] == {0: 0.50, 1: 0.60}
    lines = tweaks_table.table(rows).splitlines()
    assert lines[2] == f"| {tweaks_table.VANILLA} | 0,1 | 55.0 ± 7.1 | - |"
    assert "| kd | 0,1 | 56.0 ± 4.2 | +1.0 [-1.0, +3.0] |" in lines
    # Other runs' tickets, paired by seed (e.g. learning-rate rewinding).
    for seed, accuracy in enumerate((0.52, 0.64)):
        run = tmp_path / "lrr" / f"imp_{seed}"
        (run / "round_001").mkdir(parents=True)
        (run / "config.yaml").write_text(f"seed: {seed}\n")
        record = {"ticket": {"test": {"accuracy": accuracy}}}
        (run / "round_001" / "record.json").write_text(json.dumps(record))
    out = tmp_path / "rows.json"
    tweaks_table.main(
        [str(tmp_path), "--runs", f"lrr={tmp_path / 'lrr'}", "--json", str(out)]
    )
    assert json.loads(out.read_text())["lrr"] == {"0": 0.52, "1": 0.64}
    assert "| lrr | 0,1 | 58.0 ± 8.5 | +3.0 [+2.0, +4.0] |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tweaks_table.main([str(tmp_path), "--runs", "no-equals-sign"])


def test_extra_skips_strength_compares_both_modes_and_gammas(bench, tmp_path):
    strength = bench("extra_skips_strength")
    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x_train=x)
    data = str(tmp_path / "c.npz")
    result = strength.measure("cifar_resnet", data, size=6, depth=8, width=4)
    assert result["bn_gamma=0"] == {"inference": 0.0, "training": 0.0}
    gamma_one = result["bn_gamma=1"]
    assert 0 < gamma_one["inference"] < gamma_one["training"]


class _FakeProcess:
    """A finished child process whose output is one JSON report."""

    launched: list = []

    def __init__(self, command, env=None, **kwargs):
        self.command, self.env, self.returncode = command, env, 0
        _FakeProcess.launched.append(self)

    def communicate(self, timeout=None):
        chief = json.loads(self.env.get("TF_CONFIG", '{"task": {"index": 0}}'))
        return json.dumps({"chief": chief["task"]["index"] == 0}) + "\n", None

    def wait(self, timeout=None):
        return 0


def test_multiworker_launches_each_worker_with_its_own_tf_config(bench, monkeypatch):
    multiworker = bench("multiworker")
    _FakeProcess.launched = []
    monkeypatch.setattr(multiworker.subprocess, "Popen", _FakeProcess)
    monkeypatch.setenv("TF_CONFIG", '{"stale": true}')
    assert multiworker.launch(2)["chief"] is True
    configs = [json.loads(p.env["TF_CONFIG"]) for p in _FakeProcess.launched]
    assert [c["task"]["index"] for c in configs] == [0, 1]
    assert configs[0]["cluster"] == configs[1]["cluster"]
    assert all("--distribute" in p.command for p in _FakeProcess.launched)
    _FakeProcess.launched = []
    multiworker.launch(1)
    (single,) = _FakeProcess.launched
    assert "TF_CONFIG" not in single.env and "--distribute" not in single.command


def test_tuner_sweep_starts_a_chief_and_workers_or_one_process(bench, monkeypatch):
    tuner_sweep = bench("tuner_sweep")
    _FakeProcess.launched = []
    ran = []
    monkeypatch.setattr(tuner_sweep.subprocess, "Popen", _FakeProcess)
    monkeypatch.setattr(
        tuner_sweep.subprocess, "run", lambda command, env, **kw: ran.append(env)
    )
    assert tuner_sweep.run_tuner("c.yaml", 4, 2, None) == 4
    ids = [p.env["KERASTUNER_TUNER_ID"] for p in _FakeProcess.launched]
    assert ids == ["chief", "worker0", "worker1"]
    assert len({p.env["KERASTUNER_ORACLE_PORT"] for p in _FakeProcess.launched}) == 1
    assert tuner_sweep.run_jobs("c.yaml", 4, 2, None) == 4
    assert tuner_sweep.run_tuner("c.yaml", 4, 1, None) == 4
    assert len(ran) == 2 and not any("KERASTUNER_TUNER_ID" in env for env in ran)
    command = tuner_sweep.sweep_command("c.yaml", "out", 4)
    assert command[-1] == "cs.mask_initial_value=[-0.2, -0.0667, 0.0667, 0.2]"
