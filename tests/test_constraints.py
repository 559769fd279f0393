from __future__ import annotations

import math

import pytest

from netbudget.constraints import (
    Constraint,
    format_value,
    parse_constraint,
    parse_constraints,
)
from netbudget.exceptions import InvalidConstraintError
from netbudget.metrics import register_metric, unregister_metric


@pytest.mark.parametrize(
    ("text", "metric", "statistic", "bound", "relative"),
    [
        ("latency <= 5 ms", "latency", "mean", 5e-3, False),
        ("latency.p99 <= 8ms", "latency", "p99", 8e-3, False),
        ("latency.median<=250us", "latency", "median", 250e-6, False),
        ("latency.p90 <= 0.5 s", "latency", "p90", 0.5, False),
        ("latency.max <= 1.5e1 ms", "latency", "max", 15e-3, False),
        ("Latency.P99 <= 8 ms", "latency", "p99", 8e-3, False),
        ("latency < 5 ms", "latency", "mean", 5e-3, False),
        ("size <= 2 MB", "size", "packed", 2e6, False),
        ("size <= 512 kB", "size", "packed", 512e3, False),
        ("size <= 1.5 KiB", "size", "packed", 1536.0, False),
        ("size <= 2 MiB", "size", "packed", 2 * 1024**2, False),
        ("size <= 100 B", "size", "packed", 100.0, False),
        ("macs <= 300M", "macs", "dense", 300e6, False),
        ("macs.sparse <= 2.5 G", "macs", "sparse", 2.5e9, False),
        ("macs <= 1000", "macs", "dense", 1000.0, False),
        ("params <= 1.2M", "params", "dense", 1.2e6, False),
        ("params.sparse <= 40K", "params", "sparse", 40e3, False),
        ("memory <= 64 MiB", "memory", "peak", 64 * 1024**2, False),
        ("latency <= 0.4x", "latency", "mean", 0.4, True),
        ("size <= 0.05 x", "size", "packed", 0.05, True),
        ("latency.p99 <= 0.25X", "latency", "p99", 0.25, True),
    ],
)
def test_valid_forms(text: str, metric: str, statistic: str, bound: float, relative: bool) -> None:
    c = parse_constraint(text)
    assert (c.metric, c.statistic, c.relative) == (metric, statistic, relative)
    assert c.bound == pytest.approx(bound, rel=1e-12)
    assert c.text == text.strip()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("speed <= 5 ms", "unknown metric 'speed'; known metrics are latency, size, memory, macs, params"),
        ("latency.p95 <= 5 ms", "unknown statistic 'p95' for latency; expected one of mean, median, p90, p99, max"),
        ("size <= 3 ms", "unit 'ms' is not a size unit; use one of B, kB, KB, MB, GB, KiB, MiB, GiB"),
        ("latency <= 5 MB", "unit 'MB' is not a latency unit; use one of us, µs, ms, s"),
        ("latency <= 5", "latency needs a unit"),
        ("latency <= 0 ms", "the bound must be a number > 0, got 0"),
        ("size <= -3 MB", "the bound must be a number > 0, got -3"),
        ("latency <= fast", "Cannot parse budget 'latency <= fast'"),
        ("latency <= 1.2.3 ms", "'1.2.3 ms' is not a number followed by a unit"),
        ("latency >= 5 ms", "'>=' is not supported, budgets are upper bounds (use '<=')"),
        ("latency > 5 ms", "'>' is not supported"),
        ("latency = 5 ms", "use '<='"),
        ("", "Cannot parse budget ''"),
        ("size <= inf MB", "the bound must be a number > 0"),
    ],
)
def test_invalid_forms_name_text_and_valid_forms(text: str, fragment: str) -> None:
    with pytest.raises(InvalidConstraintError) as info:
        parse_constraint(text)
    message = str(info.value)
    assert fragment in message
    assert repr(text.strip()) in message or text == ""
    assert isinstance(info.value, ValueError)


def test_unparseable_text_lists_the_valid_forms() -> None:
    with pytest.raises(InvalidConstraintError, match=r"Valid forms: latency\[\.mean\|\.median"):
        parse_constraint("make it small")


def test_several_at_once_and_duplicates() -> None:
    cs = parse_constraints("latency <= 0.3x, size <= 0.1x; macs <= 2M")
    assert [c.key for c in cs] == ["latency.mean", "size.packed", "macs.dense"]
    assert parse_constraints(["latency.p99 <= 8 ms", {"metric": "size", "max": "2 MB"}])[1].bound == 2e6
    with pytest.raises(InvalidConstraintError, match="'latency.mean' is given more than once"):
        parse_constraints(["latency <= 5 ms", "latency <= 0.5x"])
    with pytest.raises(InvalidConstraintError, match="No budget given"):
        parse_constraints([])


def test_yaml_mapping_form() -> None:
    c = parse_constraint({"metric": "latency", "statistic": "p99", "max": "8 ms"})
    assert (c.key, c.bound) == ("latency.p99", 8e-3)
    assert parse_constraint({"metric": "latency", "max": 0.004}).bound == 0.004
    assert parse_constraint({"metric": "size", "max": 0.1, "relative": True}).relative
    assert parse_constraint({"metric": "macs", "max": 3e6}).bound == 3e6
    with pytest.raises(InvalidConstraintError, match="needs keys 'metric' and 'max'"):
        parse_constraint({"metric": "latency", "limit": "5 ms"})


def test_sign_convention_and_relative_resolution() -> None:
    c = parse_constraint("latency <= 5 ms")
    assert c.violation(0.004) == pytest.approx(-0.001)
    assert c.satisfied(0.005) and not c.satisfied(0.0051)
    rel = parse_constraint("latency <= 0.4x")
    with pytest.raises(InvalidConstraintError, match="is relative: call resolve"):
        rel.violation(1.0)
    absolute = rel.resolve(0.010)
    assert absolute.bound == pytest.approx(0.004) and not absolute.relative
    with pytest.raises(InvalidConstraintError, match="original network's latency.mean is nan"):
        rel.resolve(math.nan)
    with pytest.raises(InvalidConstraintError, match="bound must be a finite number > 0"):
        Constraint(metric="latency", statistic="mean", bound=0.0)


def test_str_round_trips_through_the_parser() -> None:
    for text in ("latency.p99 <= 8 ms", "size <= 2 MiB", "macs <= 300M", "latency <= 0.4x", "memory <= 64 KiB"):
        c = parse_constraint(text)
        again = parse_constraint(str(c))
        assert again.key == c.key and again.bound == pytest.approx(c.bound, rel=1e-3)
    assert format_value(0.0042, "s") == "4.2 ms"
    assert format_value(3 * 1024**2, "B") == "3 MiB"


def test_user_metric_budget() -> None:
    register_metric("energy", lambda model: 0.1, "J")
    try:
        c = parse_constraint("energy <= 0.2 J")
        assert (c.metric, c.bound, c.unit) == ("energy", 0.2, "J")
        assert parse_constraint("energy <= 0.5x").relative
        with pytest.raises(InvalidConstraintError, match="unit 'ms' is not a energy unit"):
            parse_constraint("energy <= 3 ms")
    finally:
        unregister_metric("energy")
    with pytest.raises(InvalidConstraintError, match="unknown metric 'energy'"):
        parse_constraint("energy <= 0.2 J")
