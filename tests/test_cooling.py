from __future__ import annotations

import math

import pytest

from netbudget.exceptions import InvalidArgumentError
from netbudget.search.cooling import CoolingSchedule, cooling_thresholds


def test_exponential_matches_the_reference_example() -> None:
    # Chen et al. (ECCV 2018): AlexNet L0 = 207 ms, C = 70 ms, a = 0.5, T = 5
    values = cooling_thresholds(207.0, 70.0)
    assert [round(v, 1) for v in values] == [141.8, 109.2, 89.3, 77.3, 70.0]
    assert values[-1] == 70.0


def test_linear_and_one_step() -> None:
    assert cooling_thresholds(200.0, 100.0, kind="linear", steps=4) == [175.0, 150.0, 125.0, 100.0]
    assert cooling_thresholds(200.0, 100.0, kind="one-step", steps=7) == [100.0]
    assert CoolingSchedule(kind="one-step").num_steps == 1


@pytest.mark.parametrize("kind", ["exponential", "linear"])
@pytest.mark.parametrize("steps", [1, 2, 5, 9])
def test_schedules_are_monotone_and_end_exactly_at_target(kind: str, steps: int) -> None:
    values = cooling_thresholds(3.7, 0.9, kind=kind, steps=steps, rate=0.3)
    assert len(values) == steps
    assert values[-1] == 0.9
    assert all(a > b for a, b in zip(values, values[1:]))
    assert all(0.9 <= v < 3.7 for v in values)


def test_target_above_dense_loosens_monotonically() -> None:
    values = cooling_thresholds(1.0, 2.0, kind="linear", steps=2)
    assert values == [1.5, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "cosine"}, r"`kind` must be one of \('exponential', 'linear', 'one-step'\), but got kind='cosine'"),
        ({"steps": 0}, r"`steps` must be >= 1, but got steps=0"),
        ({"rate": 0.0}, r"`rate` must be a finite number > 0, but got rate=0.0"),
        ({"rate": math.inf}, r"`rate` must be a finite number > 0"),
    ],
)
def test_invalid_schedule(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        CoolingSchedule(**kwargs)


@pytest.mark.parametrize(("dense", "target", "name"), [(0.0, 1.0, "dense"), (5.0, -1.0, "target"), (math.nan, 1.0, "dense")])
def test_invalid_values(dense: float, target: float, name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"`{name}` must be a finite number > 0"):
        cooling_thresholds(dense, target)
