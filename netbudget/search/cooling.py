"""Cooling schedules: the sequence of thresholds that walks a constraint from dense to target.

With dense metric ``L0``, final target ``C`` and ``T`` steps (Chen et al., ECCV 2018):

    exponential:  C_t = C + (L0 - C) * exp(-a (t+1)) + (C - L0) * exp(-a T)
    linear:       C_t = L0 + (t+1) / T * (C - L0)
    one-step:     T = 1, C_0 = C

for ``t = 0 .. T-1``; the last threshold equals ``C`` exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netbudget.exceptions import InvalidArgumentError

__all__ = ["COOLING_KINDS", "CoolingSchedule", "cooling_thresholds"]

COOLING_KINDS = ("exponential", "linear", "one-step")


@dataclass(frozen=True, kw_only=True)
class CoolingSchedule:
    """How a constraint is tightened over the search.

    Attributes:
        kind: ``exponential``, ``linear`` or ``one-step``.
        steps: number of steps ``T`` (>= 1; ignored, i.e. 1, for ``one-step``).
        rate: ``a`` of the exponential schedule (> 0).
    """

    kind: str = "exponential"
    steps: int = 5
    rate: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in COOLING_KINDS:
            raise InvalidArgumentError(f"`kind` must be one of {COOLING_KINDS}, but got kind={self.kind!r}.")
        if self.steps < 1:
            raise InvalidArgumentError(f"`steps` must be >= 1, but got steps={self.steps}.")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise InvalidArgumentError(f"`rate` must be a finite number > 0, but got rate={self.rate}.")

    @property
    def num_steps(self) -> int:
        """Number of thresholds the schedule produces."""
        return 1 if self.kind == "one-step" else self.steps

    def thresholds(self, dense: float, target: float) -> list[float]:
        """Return the thresholds ``C_0 .. C_{T-1}`` (same unit as ``dense`` and ``target``).

        Args:
            dense: metric of the uncompressed network ``L0``.
            target: final bound ``C``; the last threshold equals it exactly.

        Raises:
            InvalidArgumentError: a value is not finite or positive.
        """
        for name, value in (("dense", dense), ("target", target)):
            if not (math.isfinite(value) and value > 0):
                raise InvalidArgumentError(f"`{name}` must be a finite number > 0, but got {name}={value}.")
        steps = self.num_steps
        if self.kind == "linear":
            values = [dense + (t + 1) / steps * (target - dense) for t in range(steps)]
        elif self.kind == "exponential":
            a = self.rate
            values = [
                target + (dense - target) * math.exp(-a * (t + 1)) + (target - dense) * math.exp(-a * steps)
                for t in range(steps)
            ]
        else:
            values = [target]
        values[-1] = target  # exact, whatever the floating-point rounding above
        return values


def cooling_thresholds(
    dense: float, target: float, *, kind: str = "exponential", steps: int = 5, rate: float = 0.5
) -> list[float]:
    """Shorthand for ``CoolingSchedule(kind=..., steps=..., rate=...).thresholds(dense, target)``."""
    return CoolingSchedule(kind=kind, steps=steps, rate=rate).thresholds(dense, target)
