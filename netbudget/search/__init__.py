"""Search: cooling schedules, the constrained BO sampler and its baselines.

BoTorch and GPyTorch are imported only under this package (and lazily inside the sampler),
so ``import netbudget`` stays light.
"""

from __future__ import annotations

from netbudget.search.baselines import UniformSampler, optuna_constraints_func
from netbudget.search.bounds import (
    MEASURED_ATTR,
    Bound,
    feasible,
    measured,
    record_measurements,
    violations,
)
from netbudget.search.cooling import COOLING_KINDS, CoolingSchedule, cooling_thresholds
from netbudget.search.registry import SAMPLERS, make_sampler, register_sampler
from netbudget.search.sampler import ConstrainedBOSampler, PenaltyBOSampler

__all__ = [
    "COOLING_KINDS",
    "MEASURED_ATTR",
    "SAMPLERS",
    "Bound",
    "ConstrainedBOSampler",
    "CoolingSchedule",
    "PenaltyBOSampler",
    "UniformSampler",
    "cooling_thresholds",
    "feasible",
    "make_sampler",
    "measured",
    "optuna_constraints_func",
    "record_measurements",
    "register_sampler",
    "violations",
]
