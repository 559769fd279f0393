"""The budget language: parse ``"latency.p99 <= 8 ms"`` into a frozen ``Constraint``.

Budgets are upper bounds. Values are stored in base units (seconds, bytes, counts);
``x`` makes a bound relative to the original network (``latency <= 0.4x``). Sign
convention everywhere: ``g = measured - bound``, feasible iff ``g <= 0``.

Valid forms::

    latency[.mean|.median|.p90|.p99|.max] <= N us|ms|s
    size <= N B|kB|MB|GB|KiB|MiB|GiB
    memory <= N B|kB|MB|GB|KiB|MiB|GiB          (peak activation memory)
    macs[.sparse] <= N[K|M|G]                     (.sparse counts non-zero weights only)
    params[.sparse] <= N[K|M|G]
    <metric> <= F x                               (F times the original network's value)
    <user metric> <= N [its unit]                 (see netbudget.metrics.register_metric)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from netbudget.exceptions import InvalidConstraintError

__all__ = [
    "BUILTIN_METRICS",
    "Constraint",
    "MetricKind",
    "format_value",
    "parse_constraint",
    "parse_constraints",
]


@dataclass(frozen=True)
class MetricKind:
    """What a metric is measured in: its base unit, accepted unit suffixes and statistics."""

    base_unit: str
    units: Mapping[str, float]
    statistics: tuple[str, ...]
    default_statistic: str
    unit_required: bool


_TIME = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_BYTES = {
    "B": 1.0, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9,
    "KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3,
}
_COUNT = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9}

BUILTIN_METRICS: dict[str, MetricKind] = {
    "latency": MetricKind("s", _TIME, ("mean", "median", "p90", "p99", "max"), "mean", True),
    "size": MetricKind("B", _BYTES, ("packed",), "packed", True),
    "memory": MetricKind("B", _BYTES, ("peak",), "peak", True),
    "macs": MetricKind("MACs", _COUNT, ("dense", "sparse"), "dense", False),
    "params": MetricKind("params", _COUNT, ("dense", "sparse"), "dense", False),
}

VALID_FORMS = (
    "latency[.mean|.median|.p90|.p99|.max] <= N us|ms|s; "
    "size <= N B|kB|MB|GB|KiB|MiB|GiB; memory <= N B|kB|MB|KiB|MiB; "
    "macs[.sparse] <= N[K|M|G]; params[.sparse] <= N[K|M|G]; "
    "or any metric <= F x (F times the original network's value)"
)

_PATTERN = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<stat>[A-Za-z0-9_]+))?\s*"
    r"(?P<op><=|>=|=<|=>|<|>|==|=)\s*(?P<rest>.*?)\s*$"
)
_VALUE = re.compile(
    r"^(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan)\s*(?P<unit>[A-Za-zµ]*)$"
)


@dataclass(frozen=True, kw_only=True)
class Constraint:
    """One budget: ``metric.statistic <= bound``.

    Attributes:
        metric: ``latency``, ``size``, ``memory``, ``macs``, ``params`` or a registered user metric.
        statistic: which summary of the measurement (``mean``, ``p99``, ``sparse``, ...).
        bound: the limit in the metric's base unit (seconds, bytes, counts), or the factor
            of the original network's value when ``relative``.
        relative: whether ``bound`` is a factor (``latency <= 0.4x``).
        text: the text the constraint was parsed from (for messages and reports).
    """

    metric: str
    statistic: str
    bound: float
    relative: bool = False
    text: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bound) and self.bound > 0):
            raise InvalidConstraintError(
                f"Budget {self.text or self.key!r}: the bound must be a finite number > 0, got {self.bound}."
            )

    @property
    def key(self) -> str:
        """``metric.statistic``, e.g. ``latency.p99`` (the name measurements are stored under)."""
        return f"{self.metric}.{self.statistic}"

    @property
    def unit(self) -> str:
        """Base unit of the metric (``s``, ``B``, ``MACs``, ...)."""
        return _kind(self.metric, self.text).base_unit

    def resolve(self, original: float) -> Constraint:
        """The absolute constraint, given the original network's value (relative bounds only)."""
        if not self.relative:
            return self
        if not (math.isfinite(original) and original > 0):
            raise InvalidConstraintError(
                f"Budget {self.text!r} is relative, but the original network's {self.key} is {original}."
            )
        return replace(self, bound=self.bound * original, relative=False)

    def violation(self, value: float) -> float:
        """``g = value - bound`` (feasible iff ``g <= 0``); the constraint must be absolute."""
        if self.relative:
            raise InvalidConstraintError(f"Budget {self.text!r} is relative: call resolve(original) first.")
        return float(value) - self.bound

    def satisfied(self, value: float) -> bool:
        """Whether ``value`` meets the (absolute) bound."""
        return self.violation(value) <= 0

    def __str__(self) -> str:
        name = self.metric if self.statistic == _kind(self.metric, self.text).default_statistic else self.key
        if self.relative:
            return f"{name} <= {self.bound:g}x"
        return f"{name} <= {format_value(self.bound, self.unit)}"


def format_value(value: float, unit: str) -> str:
    """Human-readable value in a base unit: ``0.0042, 's'`` -> ``'4.2 ms'``."""
    if unit == "s":
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value / 1e-6:.3g} us"
    if unit == "B":
        for scale, suffix in ((1024.0**3, "GiB"), (1024.0**2, "MiB"), (1024.0, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value:.0f} B"
    if unit in ("MACs", "params"):
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
        return f"{value:.0f}"
    return f"{value:g} {unit}".strip()


def _kind(metric: str, text: str) -> MetricKind:
    if metric in BUILTIN_METRICS:
        return BUILTIN_METRICS[metric]
    from netbudget.metrics.registry import (
        user_metric_kind,  # user metrics live with the metrics
    )

    kind = user_metric_kind(metric)
    if kind is None:
        raise InvalidConstraintError(
            f"Cannot parse budget {text!r}: unknown metric {metric!r}; known metrics are "
            f"{', '.join(BUILTIN_METRICS)} and registered user metrics. Valid forms: {VALID_FORMS}."
        )
    return kind


def parse_constraint(entry: str | Mapping[str, Any]) -> Constraint:
    """Parse one budget from a string (CLI) or a mapping (YAML).

    Mapping form: ``{"metric": "latency", "statistic": "p99", "max": "8 ms"}``; ``max`` may
    also be a number in base units, or ``"0.4x"``.

    Raises:
        InvalidConstraintError: the text names the offending part and lists the valid forms.
    """
    if isinstance(entry, Mapping):
        return _parse_mapping(entry)
    if not isinstance(entry, str):
        raise InvalidConstraintError(f"A budget must be a string or a mapping, got {type(entry).__name__}: {entry!r}.")
    text = entry.strip()
    match = _PATTERN.match(text)
    if match is None:
        raise InvalidConstraintError(f"Cannot parse budget {text!r}. Valid forms: {VALID_FORMS}.")
    metric, stat, op, rest = match.group("metric", "stat", "op", "rest")
    metric = metric.lower()
    if op in (">=", "=>", ">"):
        raise InvalidConstraintError(
            f"Cannot parse budget {text!r}: {op!r} is not supported, budgets are upper bounds "
            f"(use '<='). Valid forms: {VALID_FORMS}."
        )
    if op in ("=", "=="):
        raise InvalidConstraintError(
            f"Cannot parse budget {text!r}: use '<=' (a budget is an upper bound, not an equality)."
        )
    kind = _kind(metric, text)
    statistic = (stat or kind.default_statistic).lower()
    if statistic not in kind.statistics:
        raise InvalidConstraintError(
            f"Cannot parse budget {text!r}: unknown statistic {statistic!r} for {metric}; "
            f"expected one of {', '.join(kind.statistics)}."
        )
    value_match = _VALUE.match(rest)
    if value_match is None:
        raise InvalidConstraintError(
            f"Cannot parse budget {text!r}: {rest!r} is not a number followed by a unit. Valid forms: {VALID_FORMS}."
        )
    number, unit = value_match.group("number", "unit")
    value = float(number)
    if not (math.isfinite(value) and value > 0):
        raise InvalidConstraintError(f"Cannot parse budget {text!r}: the bound must be a number > 0, got {number}.")
    if unit.lower() == "x":
        return Constraint(metric=metric, statistic=statistic, bound=value, relative=True, text=text)
    if unit not in kind.units:
        if unit == "" and kind.unit_required:
            problem = f"{metric} needs a unit"
        else:
            problem = f"unit {unit!r} is not a {metric} unit"
        allowed = ", ".join(u for u in kind.units if u) or "none"
        raise InvalidConstraintError(
            f"Cannot parse budget {text!r}: {problem}; use one of {allowed}, or x for a bound relative "
            f"to the original network."
        )
    return Constraint(metric=metric, statistic=statistic, bound=value * kind.units[unit], text=text)


def _parse_mapping(entry: Mapping[str, Any]) -> Constraint:
    unknown = set(entry) - {"metric", "statistic", "max", "relative"}
    if "metric" not in entry or "max" not in entry or unknown:
        raise InvalidConstraintError(
            f"A budget mapping needs keys 'metric' and 'max' (optional 'statistic', 'relative'); got {dict(entry)}."
        )
    metric = str(entry["metric"])
    if "statistic" in entry:
        metric = f"{metric}.{entry['statistic']}"
    bound = entry["max"]
    if isinstance(bound, (int, float)) and not isinstance(bound, bool):
        suffix = "x" if entry.get("relative", False) else _kind(metric.split(".")[0], str(dict(entry))).base_unit
        suffix = {"MACs": "", "params": ""}.get(suffix, suffix)
        return parse_constraint(f"{metric} <= {bound!r} {suffix}".strip())
    return parse_constraint(f"{metric} <= {bound}")


def parse_constraints(entries: str | Mapping[str, Any] | Iterable[str | Mapping[str, Any]]) -> list[Constraint]:
    """Parse several budgets: a list, or one string separated by ``,`` or ``;``.

    Raises:
        InvalidConstraintError: any entry is invalid, or one metric.statistic appears twice.
    """
    if isinstance(entries, str):
        items: list[str | Mapping[str, Any]] = [p for p in re.split(r"[;,]", entries) if p.strip()]
    elif isinstance(entries, Mapping):
        items = [entries]
    else:
        items = list(entries)
    if not items:
        raise InvalidConstraintError(f"No budget given. Valid forms: {VALID_FORMS}.")
    constraints = [parse_constraint(item) for item in items]
    keys = [c.key for c in constraints]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise InvalidConstraintError(f"Budget {duplicates[0]!r} is given more than once; keep one bound per metric.")
    return constraints
