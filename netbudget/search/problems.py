"""Standard constrained test problems for judging samplers (all minimised).

* ``gardner``: Gardner et al. (2014), §5.1: ``min cos(2x)cos(y) + sin(x)`` s.t.
  ``cos(x)cos(y) - sin(x)sin(y) <= 0.5`` on ``[0, 6]^2``.
* ``branin-disk``: Gelbart et al. (2014): Branin on ``[-5, 10] x [0, 15]`` s.t.
  ``(x1 - 2.5)^2 + (x2 - 7.5)^2 <= 50``; optimum 0.397887 (the minimum at (pi, 2.275)
  lies inside the disk).
* ``ackley10``: Eriksson & Poloczek (2021, SCBO): 10-D Ackley on ``[-5, 10]^10`` s.t.
  ``sum(x) <= 0`` and ``||x||_2 <= 5``; optimum 0 at the origin.
* ``allocation30``: a compression-like 30-D problem of ours. ``x_i`` in [0, 1] is the kept
  fraction of layer ``i``; the loss ``sum_i s_i exp(-5 x_i) / sum_i s_i`` (sensitivities
  ``s_i`` log-normal) falls with diminishing returns, and the cost ``sum_i m_i x_i /
  sum_i m_i`` (layer MACs ``m_i`` log-normal) must stay ``<= 0.3``. Convex, so the optimum is
  known exactly from the KKT conditions (``allocation_optimum``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PROBLEMS", "TestProblem", "allocation_optimum", "make_allocation"]

Function = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class TestProblem:
    """A box-bounded problem: minimise ``objective`` s.t. ``fn(x) <= threshold`` for each constraint."""

    name: str
    low: np.ndarray
    high: np.ndarray
    objective: Function
    constraints: dict[str, tuple[Function, float]] = field(default_factory=dict)
    optimum: float | None = None

    @property
    def dims(self) -> int:
        return len(self.low)


def _gardner() -> TestProblem:
    def f(x: np.ndarray) -> float:
        return float(math.cos(2 * x[0]) * math.cos(x[1]) + math.sin(x[0]))

    def c(x: np.ndarray) -> float:
        return float(math.cos(x[0]) * math.cos(x[1]) - math.sin(x[0]) * math.sin(x[1]))

    grid = np.stack(np.meshgrid(np.linspace(0, 6, 1201), np.linspace(0, 6, 1201)), -1).reshape(-1, 2)
    fv = np.cos(2 * grid[:, 0]) * np.cos(grid[:, 1]) + np.sin(grid[:, 0])
    cv = np.cos(grid[:, 0] + grid[:, 1])
    return TestProblem("gardner", np.zeros(2), np.full(2, 6.0), f, {"c": (c, 0.5)}, float(fv[cv <= 0.5].min()))


def _branin(x: np.ndarray) -> float:
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return float(a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s)


def _branin_disk() -> TestProblem:
    def disk(x: np.ndarray) -> float:
        return float((x[0] - 2.5) ** 2 + (x[1] - 7.5) ** 2)

    return TestProblem(
        "branin-disk", np.array([-5.0, 0.0]), np.array([10.0, 15.0]), _branin, {"disk": (disk, 50.0)}, 0.397887
    )


def _ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(float(np.sum(x**2)) / d))
        - math.exp(float(np.sum(np.cos(2 * math.pi * x))) / d)
        + 20
        + math.e
    )


def _ackley10() -> TestProblem:
    return TestProblem(
        "ackley10",
        np.full(10, -5.0),
        np.full(10, 10.0),
        _ackley,
        {"sum": (lambda x: float(np.sum(x)), 0.0), "norm": (lambda x: float(np.linalg.norm(x)), 5.0)},
        0.0,
    )


def make_allocation(dims: int = 30, budget: float = 0.3, seed: int = 0) -> TestProblem:
    """The compression-like allocation problem in ``dims`` dimensions (see module docstring)."""
    rng = np.random.default_rng(seed)
    s = rng.lognormal(0.0, 1.0, dims)
    m = rng.lognormal(0.0, 1.0, dims)

    def loss(x: np.ndarray) -> float:
        return float(np.sum(s * np.exp(-5 * x)) / s.sum())

    def cost(x: np.ndarray) -> float:
        return float(np.sum(m * x) / m.sum())

    problem = TestProblem(f"allocation{dims}", np.zeros(dims), np.ones(dims), loss, {"cost": (cost, budget)})
    return TestProblem(problem.name, problem.low, problem.high, loss, problem.constraints, allocation_optimum(s, m, budget))


def allocation_optimum(s: np.ndarray, m: np.ndarray, budget: float) -> float:
    """Exact optimum of the allocation problem: bisection on the KKT multiplier."""
    def x_of(lam: float) -> np.ndarray:
        return np.clip(np.log(np.maximum(5 * s / (lam * m), 1e-300)) / 5, 0.0, 1.0)

    lo, hi = 1e-12, 1e12
    for _ in range(300):
        mid = math.sqrt(lo * hi)
        if np.sum(m * x_of(mid)) / m.sum() > budget:
            lo = mid
        else:
            hi = mid
    x = x_of(hi)
    return float(np.sum(s * np.exp(-5 * x)) / s.sum())


PROBLEMS: dict[str, Callable[[], TestProblem]] = {
    "gardner": _gardner,
    "branin-disk": _branin_disk,
    "ackley10": _ackley10,
    "allocation30": make_allocation,
}
