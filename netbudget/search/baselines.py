"""Baselines behind the same Optuna interface: uniform bisection and wrappers of Optuna's samplers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from netbudget.exceptions import InvalidArgumentError
from netbudget.search.bounds import Bound, violations, with_thresholds
from netbudget.search.codec import UnitCubeCodec, numeric_space

__all__ = ["UniformSampler", "optuna_constraints_func"]


def optuna_constraints_func(bounds: Sequence[Bound]):
    """An Optuna ``constraints_func`` returning ``g = value - threshold`` for each bound.

    Optuna stores these values when a trial finishes, so a later threshold change does not
    re-judge past trials for Optuna's own samplers (ours read raw measurements instead).
    Missing measurements count as a large violation (1e12) since Optuna rejects NaN.
    """
    frozen = list(bounds)

    def constraints(trial: FrozenTrial) -> list[float]:
        return [min(g, 1e12) for g in violations(trial, frozen)]

    return constraints


class UniformSampler(BaseSampler):
    """One shared setting for every parameter, found by bisection on feasibility.

    Every proposal sets all numeric parameters to the same position ``u`` of their range
    (in the unit cube). Assuming feasibility is monotone in ``u`` and that less compression
    is more accurate, the sampler bisects for the feasibility boundary: the next ``u`` is
    the midpoint between the largest infeasible and the smallest feasible position seen so
    far (state is read from the trials, so resuming a study continues the bisection).
    Once the bracket is narrower than ``tolerance`` it re-proposes the best feasible ``u``.

    Args:
        search_space: the distributions of every parameter.
        bounds: the constraints under their current thresholds.
        feasible_side: ``high`` if larger parameter values compress more (pruning fractions),
            ``low`` if smaller values do (keep ratios, bit widths).
        tolerance: bracket width in the unit cube at which bisection stops.
    """

    def __init__(
        self,
        *,
        search_space: Mapping[str, BaseDistribution],
        bounds: Sequence[Bound] = (),
        feasible_side: str = "high",
        tolerance: float = 1.0 / 128,
        seed: int | None = None,
    ) -> None:
        if feasible_side not in ("high", "low"):
            raise InvalidArgumentError(f"`feasible_side` must be 'high' or 'low', but got {feasible_side=!r}.")
        if not 0 < tolerance < 1:
            raise InvalidArgumentError(f"`tolerance` must be in (0, 1), but got {tolerance=}.")
        self._space = numeric_space(search_space)
        if not self._space:
            raise InvalidArgumentError("UniformSampler needs at least one float or int parameter.")
        self._codec = UnitCubeCodec(self._space)
        self._bounds = list(bounds)
        self._high = feasible_side == "high"
        self._tolerance = tolerance
        self._independent = RandomSampler(seed=seed)

    def set_thresholds(self, thresholds: Mapping[str, float]) -> None:
        """Change thresholds; the bisection restarts from the re-judged history."""
        self._bounds = with_thresholds(self._bounds, thresholds)

    def position(self, params: Mapping[str, Any]) -> float:
        """The shared position ``u`` in [0, 1] (0 = least compressed) of a configuration."""
        u = float(np.mean(self._codec.encode(params)))
        return u if self._high else 1.0 - u

    def params_at(self, u: float) -> dict[str, Any]:
        """The configuration with every parameter at position ``u``."""
        row = np.full(self._codec.dims, u if self._high else 1.0 - u)
        return self._codec.decode(row)

    def next_position(self, study: Study) -> float:
        """Midpoint of the current feasibility bracket, or the best feasible position once converged."""
        low, high = 0.0, 1.0  # low: largest known infeasible, high: smallest known feasible
        found_feasible = False
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if not set(self._codec.names) <= set(t.params):
                continue
            u = self.position(t.params)
            if all(g <= 0 for g in violations(t, self._bounds)):
                if u <= high:
                    high, found_feasible = u, True
            else:
                low = max(low, u)
        if found_feasible and high - low <= self._tolerance:
            return high
        if not found_feasible and low >= 1.0 - self._tolerance:
            return 1.0
        return 0.5 * (low + high)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._space)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        return self.params_at(self.next_position(study))

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()
