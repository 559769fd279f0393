"""Do searched networks that the uniform one dominates in MACs and parameters lose to it?

Under a latency budget, a searched network can spend its milliseconds on neither compute nor
capacity: on machine F (resnet20, ``latency <= 0.5x``) several runs' final networks had fewer
multiply-accumulates *and* fewer parameters than the uniform run's network while timing slower.
For every finished ablation run of the searched ``--methods`` paired by seed with a finished run
of ``--versus`` (the uniform method), this reads both final networks' MACs, parameters, latency
ratio and test top-1 from ``final/summary.json`` and splits the runs into those the uniform
network dominates (no more MACs, no more parameters, fewer of one) and the others; per cell and
over all, it reports the mean test top-1 minus uniform's (points), its sd and how many were
below. This is the evidence behind the pipeline's ``uniform_guard``.

Writes ``benchmarks/results/dominance.json`` and ``dominance.md``.

    python benchmarks/dominance.py --cells lat50,lat50-small
    python benchmarks/dominance.py --quick          # the first cell only, same JSON shape
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from netbudget.pipeline.run import dominated  # the uniform guard's rule, used as it is

RESULTS = Path(__file__).parent / "results"
SEARCHED = "exponential-soup2-bnfinal-thin,one-step-soup2-bnfinal-thin,reference-soup2-bnfinal-thin"


def final_network(run_dir: Path) -> dict[str, float]:
    """MACs, parameters, latency ratio (median re-measurement over the original's) and test
    top-1 (fraction) of a finished run's final network."""
    summary = json.loads((run_dir / "final" / "summary.json").read_text())
    latency = [c["ratio"] for c in summary["constraints"] if c["text"].startswith("latency")]
    return {"macs": summary["metrics"]["final"]["macs"], "params": summary["metrics"]["final"]["params"],
            "latency_ratio": latency[0] if latency else None, "top1": summary["accuracy"]["final"]}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell and over all (``cell`` "all"), dominated or not: how many runs, the mean and sd of
    their test top-1 minus uniform's (points) and how many were below it."""
    out = []
    for cell in [*sorted({r["cell"] for r in runs}), "all"]:
        for flag in (True, False):
            diffs = [r["minus_uniform"] for r in runs if r["dominated"] is flag and cell in (r["cell"], "all")]
            out.append({"cell": cell, "dominated": flag, "n": len(diffs),
                        "mean": float(np.mean(diffs)) if diffs else None,
                        "sd": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
                        "below": sum(d < 0 for d in diffs)})
    return out


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = ["# Searched networks the uniform one dominates in MACs and parameters", "",
             (f"Machine: {results['machine']}. `dominated`: the uniform run's final network (same seed) has no fewer "
              "MACs and no fewer parameters, and more of one. Test top-1 minus uniform's in points."), "",
             "| cell | dominated | runs | minus uniform (mean) | sd | below uniform |", "|---|---|---:|---:|---:|---:|"]
    for s in results["summary"]:
        lines.append(f"| {s['cell']} | {'yes' if s['dominated'] else 'no'} | {s['n']} | {num(s['mean'], '+.2f')} | "
                     f"{num(s['sd'], '.2f')} | {s['below']} of {s['n']} |")
    lines += ["", ("| network | cell | method | seed | MACs / uniform's | parameters / uniform's | latency ratio | "
              "uniform's latency ratio | test top-1 | minus uniform | dominated |"),
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['network']} | {r['cell']} | {r['method']} | {r['seed']} | {r['macs'] / r['uniform_macs']:.2f} | "
                     f"{r['params'] / r['uniform_params']:.2f} | {num(r['latency_ratio'], '.3f')} | "
                     f"{num(r['uniform_latency_ratio'], '.3f')} | {100 * r['top1']:.2f} % | {r['minus_uniform']:+.2f} | "
                     f"{'yes' if r['dominated'] else 'no'} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    import argparse

    from ablation import _save
    from restart import add_run_arguments, finished_runs, open_results, run_seed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first cell only")
    add_run_arguments(parser, networks="resnet20", cells="lat50,lat50-small", methods=SEARCHED)
    parser.add_argument("--versus", default="uniform-soup2-bnfinal-thin", help="the uniform method")
    args = parser.parse_args()
    if args.versus in args.methods.split(","):
        raise SystemExit(f"--versus {args.versus}: it is also in --methods; pick the uniform method to compare with")
    from netbudget.zoo import cache_dir

    runs_dir = args.runs or cache_dir() / "ablation" / "full"
    cells = args.cells.split(",")[:1] if args.quick else args.cells.split(",")
    out = args.out or RESULTS / ("dominance_quick.json" if args.quick else "dominance.json")
    results = open_results(out, "runs")
    rows = []
    for network, cell, method, d in finished_runs(runs_dir, args.networks, ",".join(cells), args.methods):
        seed = run_seed(d)
        uniform_dir = runs_dir / f"{network}-{cell}-{args.versus}-s{seed}"
        if not (uniform_dir / "final" / "summary.json").is_file():
            print(f"[dominance] {d.name}: no finished {args.versus} run of seed {seed}; skipped")
            continue
        ours, theirs = final_network(d), final_network(uniform_dir)
        rows.append({"network": network, "cell": cell, "method": method, "seed": seed, **ours,
                     **{f"uniform_{k}": v for k, v in theirs.items()}, "dominated": dominated(ours, theirs),
                     "minus_uniform": 100 * (ours["top1"] - theirs["top1"])})
    if not rows:
        raise SystemExit(f"no run of {args.methods} pairs with a finished {args.versus} run under {runs_dir}")
    results.update(runs=rows, summary=summarise(rows))
    _save(out, results)
    write_markdown(out, results)
    for s in results["summary"]:
        if s["cell"] == "all" and s["n"]:
            print(f"[dominance] {'dominated' if s['dominated'] else 'others'}: {s['n']} runs, "
                  f"{s['mean']:+.2f} pt against uniform, {s['below']} below")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
