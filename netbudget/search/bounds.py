"""Constraints as the samplers see them, and the trial attribute that carries raw measurements.

A ``Bound`` is feasible iff ``value <= threshold``; ``g = value - threshold`` (negative or
zero means feasible). *Measured* bounds read their value from the trial's user attribute
``measured`` (a ``{name: value}`` dict set by the objective), so changing a threshold
re-judges every past trial. *Computable* bounds carry a function of the parameters and are
evaluated exactly, never modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from netbudget.exceptions import InvalidArgumentError

__all__ = ["MEASURED_ATTR", "Bound", "feasible", "measured", "record_measurements", "violations", "with_thresholds"]

MEASURED_ATTR = "measured"

ParamFunction = Callable[[Mapping[str, Any]], float]


@dataclass(frozen=True, kw_only=True)
class Bound:
    """One upper-bound constraint of a study.

    Attributes:
        name: key of the value in the trial's ``measured`` user attribute.
        threshold: the bound, in the metric's base unit; feasible iff value <= threshold.
        computable: optional exact function ``params -> value``; when given, the value is
            computed from a configuration instead of measured, and samplers that support
            it never propose a configuration that violates it.
    """

    name: str
    threshold: float
    computable: ParamFunction | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidArgumentError("`name` of a Bound must be a non-empty string.")
        if not math.isfinite(self.threshold):
            raise InvalidArgumentError(f"`threshold` must be finite, but got threshold={self.threshold} for {self.name!r}.")

    def value(self, trial: FrozenTrial) -> float:
        """The constraint's value for ``trial``: computed, measured, or ``inf`` when missing."""
        if self.computable is not None:
            return float(self.computable(trial.params))
        return float(measured(trial).get(self.name, math.inf))


def measured(trial: FrozenTrial) -> dict[str, float]:
    """Raw measurements stored on ``trial`` (``{}`` when none)."""
    return dict(trial.user_attrs.get(MEASURED_ATTR, {}))


def record_measurements(trial: Any, values: Mapping[str, float]) -> None:
    """Store raw measurements on a live ``optuna.Trial`` (merged with earlier ones)."""
    current = dict(trial.user_attrs.get(MEASURED_ATTR, {}))
    current.update({k: float(v) for k, v in values.items()})
    trial.set_user_attr(MEASURED_ATTR, current)


def violations(trial: FrozenTrial, bounds: Sequence[Bound]) -> list[float]:
    """``g = value - threshold`` for every bound (``inf`` where a measurement is missing)."""
    return [b.value(trial) - b.threshold for b in bounds]


def feasible(trial: FrozenTrial, bounds: Sequence[Bound]) -> bool:
    """Whether every bound holds for ``trial`` under the bounds' current thresholds."""
    return all(g <= 0 for g in violations(trial, bounds))


def with_thresholds(bounds: Sequence[Bound], thresholds: Mapping[str, float]) -> list[Bound]:
    """``bounds`` with the thresholds named in ``thresholds`` replaced (cooling).

    Raises:
        InvalidArgumentError: a name in ``thresholds`` is not a bound's name.
    """
    unknown = set(thresholds) - {b.name for b in bounds}
    if unknown:
        raise InvalidArgumentError(f"Unknown bound names {sorted(unknown)}; known: {[b.name for b in bounds]}.")
    return [
        Bound(name=b.name, threshold=float(thresholds.get(b.name, b.threshold)), computable=b.computable)
        for b in bounds
    ]
