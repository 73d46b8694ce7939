"""Results of an instability analysis (keras_lottery.analysis.results):
statistics over pairs, mean curves, summary and round trips."""

import math

import pytest

from keras_lottery.analysis.interpolation import InterpolationCurve
from keras_lottery.analysis.results import InstabilityResult, PairResult

pytestmark = pytest.mark.backend_neutral

ALPHAS = [0.0, 0.5, 1.0]
# Test barriers 0.19, 0.04 and 0.10 (the highest point minus the endpoints'
# mean); train barriers 0.01, 0.0 and 0.01.
TEST = [[0.1, 0.3, 0.12], [0.1, 0.14, 0.1], [0.2, 0.25, 0.1]]
TRAIN = [[0.0, 0.01, 0.0], [0.0, 0.0, 0.0], [0.02, 0.02, 0.0]]


def _result(pairs=3, threshold=0.1):
    return InstabilityResult(
        pairs=[
            PairResult(
                (2 * i + 1, 2 * i + 2),
                InterpolationCurve(ALPHAS, {"test": TEST[i], "train": TRAIN[i]}),
                [{"order_seed": 2 * i + 1}, {"order_seed": 2 * i + 2}],
            )
            for i in range(pairs)
        ],
        threshold=threshold,
        start_step=7,
        settings={"points": 3},
    )


def test_barrier_statistics_over_pairs():
    result = _result()
    assert result.splits == ["test", "train"]
    assert result.barriers("test") == pytest.approx([0.19, 0.04, 0.10])
    stats = result.stats("test")
    assert stats.pop("stable") is False  # mean 0.11 >= 0.1
    assert stats == pytest.approx(
        {
            "mean": 0.11,
            # sample standard deviation: deviations 0.08, -0.07, -0.01
            "std": math.sqrt((0.08**2 + 0.07**2 + 0.01**2) / 2),
            "min": 0.04,
            "max": 0.19,
            # endpoint means 0.11, 0.10 and 0.15
            "endpoint_error": 0.12,
        }
    )
    train = result.stats("train")
    assert train["mean"] == pytest.approx(0.02 / 3)
    assert train["min"] == 0.0 and train["max"] == pytest.approx(0.01)
    assert train["stable"] is True and result.stable("train")
    assert not result.stable("test")
    assert _result(threshold=0.12).stable("test")  # mean 0.11 < 0.12


def test_one_pair_has_zero_spread():
    stats = _result(pairs=1).stats("test")
    assert stats["std"] == 0.0
    assert stats["mean"] == stats["min"] == stats["max"] == pytest.approx(0.19)
    assert stats["endpoint_error"] == pytest.approx(0.11)


def test_mean_curve_is_taken_at_each_alpha():
    curve = _result().mean_curve("test")
    assert curve["alphas"] == ALPHAS
    assert curve["mean"] == pytest.approx([0.4 / 3, 0.69 / 3, 0.32 / 3])
    assert curve["min"] == pytest.approx([0.1, 0.14, 0.1])
    assert curve["max"] == pytest.approx([0.2, 0.3, 0.12])


def test_summary_line_per_split():
    lines = _result().summary().splitlines()
    assert lines == [
        "test: instability 11.00 ± 7.55 pp over 3 pair(s) (endpoint error "
        "12.00%) -> unstable at 10%",
        "train: instability 0.67 ± 0.58 pp over 3 pair(s) (endpoint error "
        "0.33%) -> stable at 10%",
    ]


def test_round_trips_through_dicts():
    result = _result()
    data = result.to_dict()
    assert data["start_step"] == 7 and data["settings"] == {"points": 3}
    assert data["summary"]["test"] == result.stats("test")
    assert data["pairs"][0]["seeds"] == [1, 2]
    assert data["pairs"][0]["barriers"] == pytest.approx({"test": 0.19, "train": 0.01})
    assert data["mean_curves"]["train"] == result.mean_curve("train")
    again = InstabilityResult.from_dict(data)
    assert again == result
    assert again.pairs[1].seeds == (3, 4)  # a tuple again
    assert PairResult.from_dict(data["pairs"][2]) == result.pairs[2]
