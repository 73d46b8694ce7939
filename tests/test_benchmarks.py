"""The benchmark scripts keep working (small settings; no timing is asserted)."""

import importlib
import json
import os
import sys

import pytest

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


def test_interleaved_runs_everything_once_per_repeat_and_divides_by_units(bench):
    harness = bench("_harness")
    calls = []

    def run(name, units):
        def go():
            calls.append(name)
            return units

        return go

    times = harness.interleaved({"a": run("a", 1), "b": run("b", 4)}, repeats=5)
    assert sorted(calls) == ["a"] * 5 + ["b"] * 5
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


def test_masked_overhead_times_every_formulation(bench, tmp_path):
    masked_overhead = bench("masked_overhead")
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
