"""The moments benchmark's exceedance counts (benchmarks/moments.py), on made-up bursts."""


import pytest


@pytest.fixture(scope="module")
def moments(load_benchmark):
    return load_benchmark("moments")


def test_a_bound_from_one_moment_is_overconfident_when_moments_wander(moments) -> None:
    # tight within a moment, wandering between moments
    levels = [0.50, 0.47, 0.52, 0.48, 0.51, 0.49, 0.53, 0.46]
    bursts = [[m, m + 0.001, m - 0.001] for m in levels]
    rates = moments.exceed_rates(bursts)
    assert rates["one_moment_pairs"] == 8 * 7 // 2 and rates["five_moments_pairs"] == 3 + 2 + 1
    # one moment's bound sits 0.002 above its own level: every later, higher moment exceeds it
    higher = sum(levels[j] > levels[i] + 0.002 for i in range(8) for j in range(i + 1, 8))
    assert rates["one_moment"] == pytest.approx(higher / 28)
    assert rates["one_moment"] > 0.4 and rates["five_moments"] < rates["one_moment"]


def test_without_wander_neither_bound_is_exceeded(moments) -> None:
    bursts = [[0.5, 0.501, 0.499] for _ in range(7)]
    rates = moments.exceed_rates(bursts)
    assert rates["one_moment"] == 0.0 and rates["five_moments"] == 0.0
