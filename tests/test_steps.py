"""keras_lottery.steps: points in training written as '500it', '2ep' or 0."""

import numpy as np
import pytest

from keras_lottery.steps import Step

pytestmark = pytest.mark.backend_neutral


@pytest.mark.parametrize(
    "value,expected",
    [
        (0, Step(0, "it")),
        ("0", Step(0, "it")),
        ("500it", Step(500, "it")),
        ("2ep", Step(2, "ep")),
        (" 3 ep ", Step(3, "ep")),
        ("0ep", Step(0, "it")),
        (np.int64(7), Step(7, "it")),
        (Step(4, "ep"), Step(4, "ep")),
    ],
)
def test_step_parsing(value, expected):
    assert Step.parse(value) == expected


@pytest.mark.parametrize(
    "value,steps_per_epoch,iterations",
    [("500it", 10, 500), ("2ep", 10, 20), ("2ep", 391, 782), (0, 7, 0), ("0ep", 7, 0)],
)
def test_iterations_count_epochs_in_steps(value, steps_per_epoch, iterations):
    assert Step.parse(value).iterations(steps_per_epoch) == iterations


def test_str_round_trips_through_parse():
    for text in ("0it", "500it", "2ep"):
        assert str(Step.parse(text)) == text
        assert Step.parse(str(Step.parse(text))) == Step.parse(text)
    assert str(Step.parse(0)) == "0it"


@pytest.mark.parametrize("bad", ["-1it", "2 epochs", "1.5ep", None, -3, "ep", True])
def test_bad_steps_are_rejected(bad):
    with pytest.raises(ValueError, match="step"):
        Step.parse(bad)
