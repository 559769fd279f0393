"""How much compute the ablation's last search step could keep under the target, and what shipped.

A cooled search's last step compresses the previous step's winner (``last_step`` ``path``) or
the original network afresh (``original``); a one-step search compresses the original in its only
step. Its candidates that met the step's thresholds on their scoring measurement are what the
step could ship. For every finished run directory ``ablation.py`` left
(``$NETBUDGET_CACHE/ablation/full/<network>-<cell>-<method>-s<seed>``) this reads the last step's
study and the run's summary:

- ``reach_max_macs`` / ``reach_mean_macs``: the most and the mean dense multiply-accumulates of
  the last step's candidates under its thresholds (``n_under`` of them);
- ``winner_macs``: the step winner's; ``shipped_macs`` / ``shipped_params``: the exported
  network's (after the re-check, the uniform guard and repairs);
- ``final_top1``: the run's test top-1 (fraction).

Per (network, cell, method) it averages them, and per (network, cell) it gives the Spearman rank
correlation of final top-1 with shipped MACs and with shipped parameters over the searched runs
(uniform's left out: it ships the same widths whatever the seed). The question it answers
(session 51, H's vgg ``lat60-small``): does a method lose accuracy because its last step cannot
reach the capacity another method's can under the same threshold?

Writes ``benchmarks/results/last_step_reach.json`` and ``last_step_reach.md``. Runs of the earlier
record whose directories are gone are kept (marked ``earlier``) where it ran on this CPU model, as
``recheck_walks.py`` does; ``--fresh`` drops them.

    python benchmarks/last_step_reach.py                      # every run directory (reads files only)
    python benchmarks/last_step_reach.py --cells lat60-small  # one cell
    python benchmarks/last_step_reach.py --quick              # the first 12 run directories, same JSON shape
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # the run names and the earlier record: as recheck_walks.py reads them
from recheck_walks import (
    earlier_lines,
    parse_run_name,
    read_runs,
    runs_dir,
    with_earlier,
    write,
)

RESULTS = Path(__file__).parent / "results"


def last_step_reach(storage: str) -> dict[str, Any] | None:
    """The last ``step-<t>`` study of an Optuna storage: its thresholds, the dense MACs of its
    scored candidates that met them and its winner's; None when no step finished."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    steps = sorted((int(s.study_name.removeprefix("step-")), s.study_name)
                   for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith("step-")
                   and s.study_name.removeprefix("step-").isdigit())
    if not steps:
        return None
    study = optuna.load_study(study_name=steps[-1][1], storage=storage)
    thresholds = study.user_attrs.get("thresholds")
    if not thresholds or not study.user_attrs.get("done"):
        return None
    scored = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if "macs" in t.user_attrs and "measured" in t.user_attrs]
    under = [t.user_attrs["macs"] for t in scored
             if all(t.user_attrs["measured"].get(k, np.inf) <= v for k, v in thresholds.items())]
    winner = study.user_attrs.get("winner")
    by_number = {t.number: t for t in scored}
    return {"step": steps[-1][0], "base": study.user_attrs.get("base", "path"), "thresholds": thresholds,
            "n_scored": len(scored), "n_under": len(under),
            "reach_max_macs": max(under) if under else None,
            "reach_mean_macs": float(np.mean(under)) if under else None,
            "winner_macs": by_number[winner].user_attrs["macs"] if winner in by_number else None}


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """One finished ablation run's record; None for another directory, an unfinished run or a
    run whose last step was not searched (the uniform path's scored candidates are its own)."""
    meta = parse_run_name(run_dir.name)
    summary_path = run_dir / "final" / "summary.json"
    if meta is None or not summary_path.is_file() or not (run_dir / "study.db").is_file():
        return None
    reach = last_step_reach(f"sqlite:///{(run_dir / 'study.db').resolve()}")
    if reach is None:
        return None
    summary = json.loads(summary_path.read_text())
    final = summary["metrics"]["final"]
    return {**meta, **reach, "shipped_macs": final["macs"], "shipped_params": final["params"],
            "guard_applied": bool((summary.get("guard") or {}).get("applied")),
            "final_top1": summary["accuracy"]["final"], "verified": bool(summary["feasible"])}


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None under 3 pairs or a constant side."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarise(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per (network, cell, method): means over its runs; per (network, cell): Spearman of final
    top-1 with shipped MACs and parameters over its searched runs."""
    methods: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        methods.setdefault((run["network"], run["cell"], run["method"]), []).append(run)
    per_method = [{"network": n, "cell": c, "method": m, "runs": len(rs),
                   "reach_max_macs": _mean([r["reach_max_macs"] for r in rs]),
                   "reach_mean_macs": _mean([r["reach_mean_macs"] for r in rs]),
                   "winner_macs": _mean([r["winner_macs"] for r in rs]),
                   "shipped_macs": _mean([r["shipped_macs"] for r in rs]),
                   "shipped_params": _mean([r["shipped_params"] for r in rs]),
                   "final_top1": _mean([r["final_top1"] for r in rs])}
                  for (n, c, m), rs in sorted(methods.items())]
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        if not run["method"].startswith("uniform"):
            cells.setdefault((run["network"], run["cell"]), []).append(run)
    per_cell = [{"network": n, "cell": c, "runs": len(rs),
                 "spearman_macs": spearman([r["shipped_macs"] for r in rs], [r["final_top1"] for r in rs]),
                 "spearman_params": spearman([r["shipped_params"] for r in rs], [r["final_top1"] for r in rs])}
                for (n, c), rs in sorted(cells.items())]
    return per_method, per_cell


def _millions(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f} M"


def _rho(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def markdown(result: dict[str, Any]) -> list[str]:
    """The tables of ``last_step_reach.md``."""
    lines = ["# What the last search step could reach under the target, and what shipped", "",
             (f"Machine: {result['machine']}. Run directories: `{result['runs_dir']}`. Reach: the dense MACs of the "
              "last step's candidates that met its thresholds on their scoring measurement (the most, and the "
              "mean, per run); shipped: the exported network's. Means over the method's runs."), ""]
    lines += earlier_lines(result["runs"])
    lines += [("| network | cell | method | runs | reach, most | reach, mean | step winner | shipped MACs "
               "| shipped parameters | final top-1 |"), "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["methods"]:
        params = "-" if row["shipped_params"] is None else f"{row['shipped_params'] / 1e3:.1f} k"
        top1 = "-" if row["final_top1"] is None else f"{100 * row['final_top1']:.2f} %"
        lines.append(f"| {row['network']} | {row['cell']} | {row['method']} | {row['runs']} | "
                     f"{_millions(row['reach_max_macs'])} | {_millions(row['reach_mean_macs'])} | "
                     f"{_millions(row['winner_macs'])} | {_millions(row['shipped_macs'])} | {params} | {top1} |")
    lines += ["", ("Spearman rank correlation of final top-1 with the shipped network's size, over the searched runs "
                   "of a cell (uniform's left out):"), "",
              "| network | cell | runs | with MACs | with parameters |", "|---|---|---:|---:|---:|"]
    for row in result["cells"]:
        lines.append(f"| {row['network']} | {row['cell']} | {row['runs']} | {_rho(row['spearman_macs'])} | "
                     f"{_rho(row['spearman_params'])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 12 run directories")
    parser.add_argument("--fresh", action="store_true",
                        help="drop the earlier record's runs whose directories are gone")
    parser.add_argument("--cells", default=None, help="comma-separated cells to read (default: every cell)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="the ablation's run directories [$NETBUDGET_CACHE/ablation/full]")
    args = parser.parse_args()
    args.runs = runs_dir(parser, args.runs)
    cells = None if args.cells is None else {c.strip() for c in args.cells.split(",") if c.strip()}
    names = sorted(p for p in args.runs.iterdir() if p.is_dir())
    if cells is not None:
        names = [p for p in names if (parse_run_name(p.name) or {}).get("cell") in cells]
    if args.quick:
        names = names[:12]
    runs = read_runs(names, read_run)
    if not runs:
        parser.error(f"--runs: no finished ablation run under {args.runs}" + (f" in cells {sorted(cells)}" if cells else ""))
    from netbudget.metrics import describe_machine

    machine = describe_machine()["cpu"]
    out = RESULTS / ("last_step_reach_quick.json" if args.quick else "last_step_reach.json")
    if not args.quick and not args.fresh:  # another cell's earlier runs stay as recorded
        runs = with_earlier(runs, out, machine, args.runs, kept=lambda run: cells is None or run["cell"] in cells)
    runs = sorted(runs, key=lambda r: r["run"])
    per_method, per_cell = summarise(runs)
    write(out, {"machine": machine, "runs_dir": str(args.runs), "methods": per_method, "cells": per_cell, "runs": runs},
          markdown)

if __name__ == "__main__":
    main()
