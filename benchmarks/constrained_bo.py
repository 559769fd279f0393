"""Constrained samplers on standard problems: best feasible value vs evaluations, and overhead.

Writes ``benchmarks/results/constrained_bo.json`` and ``constrained_bo.md``.

    python benchmarks/constrained_bo.py            # 4 problems, budgets 30/60/100, 10 seeds
    python benchmarks/constrained_bo.py --quick    # 2-D problems + ackley10, budget 30, 3 seeds

Every method treats every constraint as a measured black box (nothing is computable here),
so all of them see the same information. Each run is one sequential study of the largest
budget; the best feasible value after the first 30 / 60 / 100 evaluations gives the three
budgets (no method knows its budget in advance).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch

from netbudget.search import Bound, make_sampler, record_measurements
from netbudget.search.problems import PROBLEMS, TestProblem, make_allocation

RESULTS = Path(__file__).parent / "results"
METHODS = ("netbudget", "optuna-gp", "tpe", "random")
N_STARTUP = 10


def _space(problem: TestProblem) -> dict[str, optuna.distributions.FloatDistribution]:
    return {f"x{i:02d}": optuna.distributions.FloatDistribution(float(lo), float(hi))
            for i, (lo, hi) in enumerate(zip(problem.low, problem.high, strict=True))}


def _objective(problem: TestProblem, space: dict):
    names = sorted(space)

    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_float(n, space[n].low, space[n].high) for n in names])
        record_measurements(trial, {name: fn(x) for name, (fn, _) in problem.constraints.items()})
        return problem.objective(x)

    return objective


def run_one(args: tuple[str, str, int, int]) -> dict:
    """One study: return best feasible value after each evaluation (inf while none) and seconds."""
    problem_name, method, seed, budget = args
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problem = PROBLEMS[problem_name]()
    space = _space(problem)
    bounds = [Bound(name=k, threshold=t) for k, (_, t) in problem.constraints.items()]
    sampler = make_sampler(method, search_space=space, bounds=bounds, seed=seed, n_startup_trials=N_STARTUP)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    start = time.perf_counter()
    study.optimize(_objective(problem, space), n_trials=budget)
    best, trace = math.inf, []
    for t in study.trials:
        ok = all(t.user_attrs["measured"][b.name] <= b.threshold for b in bounds)
        if ok and t.value < best:
            best = t.value
        trace.append(best)
    return {"problem": problem_name, "method": method, "seed": seed, "trace": trace,
            "seconds": time.perf_counter() - start}


def overhead(dims: int, trials: int, repeats: int = 3) -> float:
    """Median seconds of one netbudget proposal with ``trials`` completed trials in ``dims`` dims."""
    torch.set_num_threads(1)
    problem = make_allocation(dims)
    space = _space(problem)
    fn, threshold = problem.constraints["cost"]
    rng = np.random.default_rng(0)
    study = optuna.create_study(
        direction="minimize",
        sampler=make_sampler("netbudget", search_space=space, bounds=[Bound(name="cost", threshold=threshold)], seed=0),
    )
    names = sorted(space)
    for _ in range(trials):
        x = rng.random(dims)
        study.add_trial(optuna.trial.create_trial(
            params=dict(zip(names, x.tolist())), distributions=space, value=problem.objective(x),
            user_attrs={"measured": {"cost": fn(x)}},
        ))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask()
        trial.suggest_float(names[0], 0.0, 1.0)
        times.append(time.perf_counter() - start)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    problems = ["gardner", "branin-disk", "ackley10"] if args.quick else list(PROBLEMS)
    budgets = [30] if args.quick else [30, 60, 100]
    seeds = args.seeds or (3 if args.quick else 10)
    jobs = [(p, m, s, max(budgets)) for p in problems for m in METHODS for s in range(seeds)]
    # longest jobs first so the pool stays busy
    jobs.sort(key=lambda j: (PROBLEMS[j[0]]().dims, j[1] in ("netbudget", "optuna-gp")), reverse=True)
    runs = []
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for i, run in enumerate(pool.imap_unordered(run_one, jobs)):
            runs.append(run)
            print(f"[{i + 1}/{len(jobs)}] {run['problem']} {run['method']} seed {run['seed']}: "
                  f"best {run['trace'][-1]:.4g} in {run['seconds']:.0f} s", flush=True)
    out_problems = []
    for p in problems:
        problem = PROBLEMS[p]()
        results = []
        for m in METHODS:
            mine = [r for r in runs if r["problem"] == p and r["method"] == m]
            for b in budgets:
                values = [r["trace"][b - 1] for r in mine]
                finite = [v for v in values if math.isfinite(v)]
                results.append({
                    "method": m,
                    "budget": b,
                    "best_mean": statistics.fmean(finite) if finite else None,
                    "best_sem": (statistics.stdev(finite) / math.sqrt(len(finite))) if len(finite) > 1 else 0.0,
                    "feasible_share": len(finite) / len(values),
                    "seconds_mean": statistics.fmean(r["seconds"] for r in mine),
                })
        out_problems.append({"name": p, "dims": problem.dims, "minimize": True, "optimum": problem.optimum,
                             "results": results})
    grid = [(2, 50), (10, 50), (30, 50), (60, 50), (30, 100), (30, 200)] if args.quick else \
        [(d, n) for d in (2, 10, 30, 60) for n in (50, 100, 200)]
    overheads = [{"dims": d, "trials": n, "propose_s_median": round(overhead(d, n), 3)} for d, n in grid]
    machine = f"{platform.machine()}, {multiprocessing.cpu_count()} cores, torch {torch.__version__}, 1 thread per run"
    payload = {"machine": machine, "seeds": seeds, "n_startup_trials": N_STARTUP, "quick": args.quick,
               "problems": out_problems, "overhead": overheads}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "constrained_bo_quick" if args.quick else "constrained_bo"
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(render(payload))
    print(render(payload))


def render(payload: dict) -> str:
    lines = ["# Constrained BO on standard problems", "",
             f"Machine: {payload['machine']}. {payload['seeds']} seeds; {payload['n_startup_trials']} "
             "space-filling trials for every model-based method; every constraint a measured black box. "
             "Best feasible objective (minimised), mean ± s.e.m. over runs that found a feasible point; "
             "`feasible` = share of runs that did.", ""]
    for p in payload["problems"]:
        lines += [f"## {p['name']} ({p['dims']}-D, optimum {p['optimum']:.4g})", "",
                  "| method | budget | best (mean ± sem) | feasible | s / run |", "|---|---:|---:|---:|---:|"]
        for r in p["results"]:
            best = "—" if r["best_mean"] is None else f"{r['best_mean']:.4f} ± {r['best_sem']:.4f}"
            lines.append(f"| {r['method']} | {r['budget']} | {best} | {r['feasible_share']:.0%} | {r['seconds_mean']:.0f} |")
        lines.append("")
    lines += ["## Proposal overhead (netbudget)", "", "| dims | completed trials | median s / proposal |", "|---:|---:|---:|"]
    lines += [f"| {o['dims']} | {o['trials']} | {o['propose_s_median']:.3f} |" for o in payload["overhead"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
