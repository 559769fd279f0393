"""Samplers by name: ``make_sampler("netbudget", search_space=..., bounds=..., seed=0)``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler

from netbudget.exceptions import InvalidArgumentError, UnknownNameError
from netbudget.search.baselines import UniformSampler, optuna_constraints_func
from netbudget.search.bounds import Bound
from netbudget.search.sampler import ConstrainedBOSampler, PenaltyBOSampler

__all__ = ["SAMPLERS", "SamplerFactory", "make_sampler", "register_sampler"]

SamplerFactory = Callable[..., BaseSampler]
"""``factory(*, search_space, bounds, seed, n_startup_trials, **options) -> BaseSampler``."""

SAMPLERS: dict[str, SamplerFactory] = {}


def register_sampler(name: str, factory: SamplerFactory) -> None:
    """Register a sampler factory under ``name`` (registering a name twice is an error)."""
    if name in SAMPLERS:
        raise InvalidArgumentError(f"A sampler named {name!r} is already registered.")
    SAMPLERS[name] = factory


def make_sampler(
    name: str,
    *,
    search_space: Mapping[str, BaseDistribution],
    bounds: Sequence[Bound] = (),
    seed: int | None = None,
    n_startup_trials: int = 20,
    **options: Any,
) -> BaseSampler:
    """Build the sampler registered as ``name``.

    Args:
        name: one of ``SAMPLERS`` (``netbudget``, ``penalty``, ``uniform``, ``random``,
            ``sobol``, ``tpe``, ``optuna-gp``).
        search_space: every parameter's distribution.
        bounds: the constraints under their current thresholds.
        seed: random seed.
        n_startup_trials: initial space-filling trials (model-based samplers only).
        **options: sampler-specific options (e.g. ``reference`` and ``weight`` for
            ``penalty``, ``feasible_side`` for ``uniform``).
    """
    if name not in SAMPLERS:
        raise UnknownNameError(f"Unknown sampler {name!r}: expected one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[name](
        search_space=search_space, bounds=list(bounds), seed=seed, n_startup_trials=n_startup_trials, **options
    )


def _netbudget(*, search_space, bounds, seed, n_startup_trials, **options) -> BaseSampler:
    return ConstrainedBOSampler(
        search_space=search_space, bounds=bounds, seed=seed, n_startup_trials=n_startup_trials, **options
    )


def _penalty(*, search_space, bounds, seed, n_startup_trials, reference, weight=1.0, **options) -> BaseSampler:
    return PenaltyBOSampler(
        search_space=search_space, bounds=bounds, seed=seed, n_startup_trials=n_startup_trials,
        reference=reference, weight=weight, **options,
    )


def _uniform(*, search_space, bounds, seed, n_startup_trials, **options) -> BaseSampler:
    return UniformSampler(search_space=search_space, bounds=bounds, seed=seed, **options)


def _random(*, search_space, bounds, seed, n_startup_trials) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _sobol(*, search_space, bounds, seed, n_startup_trials) -> BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False)


# Optuna 5 deprecates `constraints_func` (removal planned for v7) in favour of
# `Trial.set_constraint`; we keep it because it lets the baselines read the same raw
# measurements as our sampler, without the objective knowing the thresholds.
def _tpe(*, search_space, bounds, seed, n_startup_trials) -> BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=n_startup_trials, multivariate=True,
            constraints_func=optuna_constraints_func(bounds) if bounds else None,
        )


def _optuna_gp(*, search_space, bounds, seed, n_startup_trials) -> BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=n_startup_trials,
            constraints_func=optuna_constraints_func(bounds) if bounds else None,
        )


for _name, _factory in (
    ("netbudget", _netbudget),
    ("penalty", _penalty),
    ("uniform", _uniform),
    ("random", _random),
    ("sobol", _sobol),
    ("tpe", _tpe),
    ("optuna-gp", _optuna_gp),
):
    register_sampler(_name, _factory)
