from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from netbudget.exceptions import (
    InvalidArgumentError,
    UnknownNameError,
    UnreachableBudgetError,
)
from netbudget.search import (
    SAMPLERS,
    Bound,
    ConstrainedBOSampler,
    UniformSampler,
    feasible,
    make_sampler,
    record_measurements,
    register_sampler,
)
from netbudget.search.problems import PROBLEMS

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACE = {"a": FloatDistribution(0.0, 1.0), "b": FloatDistribution(0.0, 1.0), "c": IntDistribution(2, 8)}


def _objective(trial: optuna.Trial) -> float:
    """A compression-like toy: accuracy falls as 'a' and 'b' grow; latency falls too."""
    a = trial.suggest_float("a", 0.0, 1.0)
    b = trial.suggest_float("b", 0.0, 1.0)
    c = trial.suggest_int("c", 2, 8)
    record_measurements(trial, {"latency": 1.0 - 0.5 * a - 0.4 * b + 0.01 * c})
    return 1.0 - a**2 - 0.5 * b**2 - 0.01 * (8 - c)


def _options(name: str) -> dict:
    if name == "penalty":
        return {"reference": {"latency": 1.0}, "n_candidates": 256}
    return {"n_candidates": 256} if name == "netbudget" else {}


def _run(name: str, seed: int, n_trials: int = 12) -> optuna.Study:
    bounds = [Bound(name="latency", threshold=0.6)]
    sampler = make_sampler(name, search_space=SPACE, bounds=bounds, seed=seed, n_startup_trials=5, **_options(name))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=n_trials)
    return study


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_conformance_every_registered_sampler(name: str) -> None:
    """Every sampler: proposals inside the space, reproducible with a seed, survives failures."""
    study = _run(name, seed=3)
    assert len(study.trials) == 12
    for t in study.trials:
        assert 0.0 <= t.params["a"] <= 1.0 and 0.0 <= t.params["b"] <= 1.0
        assert isinstance(t.params["c"], int) and 2 <= t.params["c"] <= 8
    again = _run(name, seed=3)
    assert [t.params for t in study.trials] == [t.params for t in again.trials]
    # a failing trial is recorded and the next proposal still works
    study.optimize(lambda trial: (trial.suggest_float("a", 0, 1), float("nan"))[1], n_trials=1)
    study.optimize(_objective, n_trials=2)
    assert study.trials[12].state == TrialState.FAIL
    assert study.trials[-1].state == TrialState.COMPLETE


def test_netbudget_finds_the_feasible_optimum_of_the_toy() -> None:
    study = _run("netbudget", seed=0, n_trials=25)
    bounds = [Bound(name="latency", threshold=0.6)]
    best = max((t for t in study.trials if feasible(t, bounds)), key=lambda t: t.value)
    # optimum (Lagrange): c = 2, a = 0.368, b = 0.589 on 0.5a + 0.4b = 0.42, value 0.6310
    assert best.value > 0.62
    assert best.user_attrs["measured"]["latency"] <= 0.6


def test_never_proposes_a_configuration_violating_a_computable_bound() -> None:
    size = Bound(name="size", threshold=0.5, computable=lambda p: 1.0 - 0.6 * p["a"] - 0.3 * p["b"])
    sampler = ConstrainedBOSampler(search_space=SPACE, bounds=[size], seed=0, n_startup_trials=6, n_candidates=256)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=14)
    for t in study.trials:
        assert size.computable(t.params) <= 0.5 + 1e-12, t.params
    # and it optimises along that boundary: best is near a ~ 0.6-0.8
    assert study.best_value > 0.5


def test_a_computable_bound_met_only_in_a_corner_is_searched_from_a_known_feasible_point() -> None:
    """A tight storage budget: only a corner of the space meets it (no uniform draw among 20k
    does), but the enqueued configuration does; the sampler proposes other feasible ones."""
    space = {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(12)}
    size = Bound(name="size", threshold=0.04, computable=lambda p: float(np.mean([1.0 - v for v in p.values()])))
    sampler = ConstrainedBOSampler(search_space=space, bounds=[size], seed=0, n_startup_trials=4, n_candidates=256)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({name: 0.97 for name in space})

    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_float(name, 0.0, 1.0) for name in space])
        return float(1.0 - np.sum(x**2 * np.linspace(0.1, 1.0, len(x))))

    study.optimize(objective, n_trials=8)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for t in study.trials:
        assert size.computable(t.params) <= 0.04 + 1e-12, t.params
    rows = {tuple(round(v, 6) for v in t.params.values()) for t in study.trials}
    assert len(rows) == 8  # new configurations, not the enqueued one again
    # the search trades the cheap dimensions against the expensive ones: better than the seed
    assert study.best_value > study.trials[0].value


def test_unreachable_computable_bound_raises() -> None:
    impossible = Bound(name="size", threshold=-1.0, computable=lambda p: p["a"])
    sampler = ConstrainedBOSampler(search_space=SPACE, bounds=[impossible], seed=0)
    study = optuna.create_study(sampler=sampler)
    with pytest.raises(UnreachableBudgetError, match=r"computable bounds \['size <= -1'\]"):
        study.optimize(_objective, n_trials=1)


def test_pending_trial_gets_a_different_proposal() -> None:
    bounds = [Bound(name="latency", threshold=0.6)]
    sampler = ConstrainedBOSampler(search_space=SPACE, bounds=bounds, seed=1, n_startup_trials=5, n_candidates=256)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=8)
    first = study.ask()
    params_first = {k: first.suggest_float(k, 0, 1) for k in ("a", "b")} | {"c": first.suggest_int("c", 2, 8)}
    second = study.ask()  # `first` is still RUNNING: a parallel worker
    params_second = {k: second.suggest_float(k, 0, 1) for k in ("a", "b")} | {"c": second.suggest_int("c", 2, 8)}
    assert params_first != params_second
    distance = math.dist([params_first["a"], params_first["b"]], [params_second["a"], params_second["b"]])
    assert distance > 1e-3


def test_changing_thresholds_rejudges_history() -> None:
    bounds = [Bound(name="latency", threshold=0.9)]
    sampler = ConstrainedBOSampler(search_space=SPACE, bounds=bounds, seed=0, n_startup_trials=5, n_candidates=256)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=10)
    loose = sum(feasible(t, sampler.bounds) for t in study.trials)
    sampler.set_thresholds({"latency": 0.55})
    tight = sum(feasible(t, sampler.bounds) for t in study.trials)
    assert tight < loose
    study.optimize(_objective, n_trials=6)
    late = [t.user_attrs["measured"]["latency"] for t in study.trials[10:]]
    assert np.mean(late) < 0.7  # after tightening, proposals move towards the new boundary
    with pytest.raises(InvalidArgumentError, match=r"Unknown bound names \['memory'\]"):
        sampler.set_thresholds({"memory": 1.0})


def test_enqueued_seed_point_is_evaluated_as_given() -> None:
    study = optuna.create_study(direction="maximize", sampler=ConstrainedBOSampler(search_space=SPACE, seed=0))
    study.enqueue_trial({"a": 0.25, "b": 0.5, "c": 4})
    study.optimize(_objective, n_trials=1)
    assert study.trials[0].params == {"a": 0.25, "b": 0.5, "c": 4}


def test_uniform_bisection_converges_to_the_boundary() -> None:
    bounds = [Bound(name="latency", threshold=0.6)]
    space = {"a": FloatDistribution(0.0, 1.0), "b": FloatDistribution(0.0, 1.0)}
    sampler = UniformSampler(search_space=space, bounds=bounds, tolerance=1 / 256)

    def objective(trial: optuna.Trial) -> float:
        a, b = trial.suggest_float("a", 0, 1), trial.suggest_float("b", 0, 1)
        record_measurements(trial, {"latency": 1.0 - 0.5 * a - 0.4 * b})
        return -a - b

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=12)
    assert all(t.params["a"] == t.params["b"] for t in study.trials)
    best = max((t for t in study.trials if feasible(t, bounds)), key=lambda t: t.value)
    # boundary: 1 - 0.9u = 0.6 -> u = 4/9
    assert abs(best.params["a"] - 4 / 9) < 1 / 128


def test_registry_errors() -> None:
    with pytest.raises(UnknownNameError, match="Unknown sampler 'cma'.*netbudget"):
        make_sampler("cma", search_space=SPACE)
    with pytest.raises(InvalidArgumentError, match="already registered"):
        register_sampler("tpe", lambda **kw: None)
    with pytest.raises(InvalidArgumentError, match="`reference` needs a value for every bound"):
        make_sampler("penalty", search_space=SPACE, bounds=[Bound(name="latency", threshold=1.0)], reference={})


def test_sampler_argument_validation() -> None:
    with pytest.raises(InvalidArgumentError, match="`search_space` is required when a bound is computable"):
        ConstrainedBOSampler(bounds=[Bound(name="s", threshold=1.0, computable=lambda p: 0.0)])
    with pytest.raises(InvalidArgumentError, match="`n_startup_trials` must be >= 1"):
        ConstrainedBOSampler(n_startup_trials=0)
    with pytest.raises(InvalidArgumentError, match="Bound names must be unique"):
        ConstrainedBOSampler(bounds=[Bound(name="x", threshold=1.0), Bound(name="x", threshold=2.0)])
    with pytest.raises(InvalidArgumentError, match="`threshold` must be finite"):
        Bound(name="x", threshold=math.nan)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problems_have_their_stated_optimum(name: str) -> None:
    problem = PROBLEMS[name]()
    if name == "branin-disk":
        x = np.array([math.pi, 2.275])
        assert abs(problem.objective(x) - problem.optimum) < 1e-5
        assert problem.constraints["disk"][0](x) <= 50
    elif name == "ackley10":
        assert problem.objective(np.zeros(10)) == pytest.approx(0.0, abs=1e-12)
    elif name == "gardner":
        assert -2.0 <= problem.optimum < -1.99
    else:
        rng = np.random.default_rng(0)
        fn, threshold = problem.constraints["cost"]
        for _ in range(200):  # no feasible random point beats the KKT optimum
            x = rng.random(problem.dims)
            if fn(x) <= threshold:
                assert problem.objective(x) >= problem.optimum - 1e-9
