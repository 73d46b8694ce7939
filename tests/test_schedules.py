"""keras_lottery.schedules: learning-rate schedules (serializable)."""

import keras
import pytest

from keras_lottery.schedules import OffsetSchedule, WarmupStepDecay

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _values(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]


def test_warmup_step_decay_values():
    schedule = WarmupStepDecay(0.1, milestones=[10, 20], gamma=0.1, warmup_steps=4)
    assert _values(schedule, [0, 1, 3, 9, 10, 19, 20, 25]) == pytest.approx(
        [0.025, 0.05, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_constant_without_milestones_or_warmup():
    assert _values(WarmupStepDecay(0.3), [0, 1, 10_000]) == pytest.approx([0.3] * 3)


def test_offset_schedule_continues_from_the_offset():
    inner = WarmupStepDecay(0.1, milestones=[10], gamma=0.5)
    assert _values(OffsetSchedule(inner, 8), [0, 1, 2, 3]) == pytest.approx(
        [0.1, 0.1, 0.05, 0.05]
    )


def test_schedules_serialize():
    inner = WarmupStepDecay(0.1, milestones=[10], gamma=0.5, warmup_steps=2)
    offset = OffsetSchedule(inner, 8)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(offset)
    )
    assert isinstance(restored, OffsetSchedule) and restored.offset == 8
    assert restored.schedule.get_config() == inner.get_config()
    assert _values(restored, [0, 1, 2, 3]) == pytest.approx(
        _values(inner, [8, 9, 10, 11])
    )
