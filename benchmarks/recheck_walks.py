"""Where the ablation's re-check walks ended: on the same network timed again, or thinned.

Before the final fine-tune the pipeline times a run's winner again (``_recheck``); when the
upper confidence bound misses the searched threshold (the budget less the safety margin), it
walks the uniform line: the winner thinned by a growing share of its channels' remaining range
(1/32, 1/16, 1/8, ...), each try timed again, until one holds. A small share can round every
channel group back to its width (kept counts are multiples of ``round_to``): that try times the
same network again. For every run directory ``ablation.py`` left (``$NETBUDGET_CACHE/ablation/
full/<network>-<cell>-<method>-s<seed>``) whose re-check missed at first, this says where the
walk ended:

- ``winner``: the winner itself held when re-timed (``--retimes``);
- ``same network``: a share that kept every width held (the same network, timed again);
- ``thinned``: a share that removed channels held (``params_kept``: the fraction of the
  winner's dense parameters kept);
- ``missed``: nothing held (the last share goes on; verification decides);

and whether the run's verification (the budget itself, independent re-measurements) held.
The ``same network`` walks are those a walk that skipped shares keeping every width would have
sent on to a real thinning (and a final fine-tune of a smaller network). ``halfway_same_network``
counts the tries such a walk spent on the share halfway back, which keeps every width too (since
session 47 the walk does not time a halfway share with the held network's widths).
A try's ``params_kept`` is read from its record (runs since session 46) or, for older records,
from the dense parameter counts of the last step's network and the exported one (runs whose
uniform guard shipped the uniform path's network are left out: their export is not the walk's).

Writes ``benchmarks/results/recheck_walks.json`` and ``recheck_walks.md``. Runs of the earlier
record whose directories are gone (a fresh machine keeps none of the last one's cache) are kept,
marked ``earlier``, where that record ran on this CPU model, so the record grows across machines
of one kind; ``--fresh`` drops them.

    python benchmarks/recheck_walks.py            # every run directory (reads files; no timing, no training)
    python benchmarks/recheck_walks.py --fresh    # only the run directories there now
    python benchmarks/recheck_walks.py --quick    # the first 12 run directories, same JSON shape
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
METHODS = ("penalty", "one-step", "linear", "exponential", "uniform", "random", "tpe", "optuna-gp", "reference")
RUN_NAME = re.compile(r"^(?P<network>[a-z0-9]+)-(?P<cell>.+?)-(?P<method>(?:" + "|".join(METHODS)
                      + r")(?:-[a-z0-9-]+?)?)-s(?P<seed>\d+)$")
OUTCOMES = ("winner", "same network", "thinned", "missed")


def parse_run_name(name: str) -> dict[str, Any] | None:
    """``network``, ``cell``, ``method`` and ``seed`` of an ablation run directory's name
    (``resnet20-lat60-small-tpe-soup2-bnfinal-thin-retime-s3``); None for another name."""
    match = RUN_NAME.match(name)
    if match is None:
        return None
    return {"network": match["network"], "cell": match["cell"], "method": match["method"], "seed": int(match["seed"])}


def walk_outcome(recheck: dict[str, Any], params_kept: float | None) -> dict[str, Any] | None:
    """Where a re-check record's walk ended; None when the winner held at its first timing
    (no walk). ``params_kept``: the held try's kept fraction of the winner's dense parameters
    when its record lacks one (older runs), else ignored."""
    tries = recheck.get("tries") or []
    if not tries or tries[0]["passed"]:
        return None
    position = float(recheck["position"])
    held = [t for t in tries if t["passed"] and float(t["position"]) == position]
    kept = held[-1].get("params_kept", params_kept) if held else None
    if not recheck["passed"]:
        outcome = "missed"
    elif position == 0:
        outcome, kept = "winner", 1.0
    elif kept is None:
        raise ValueError(f"the walk held at share {position}, but its kept parameters are unknown: "
                         "pass params_kept (older records lack it)")
    else:
        outcome = "same network" if kept >= 1.0 else "thinned"
    # the first share that held kept every width (it is the walk's end, or its record says so):
    # the share halfway back keeps every width too, so its tries timed the same network
    first = next(t for t in tries if t["passed"]) if outcome == "same network" else None
    same_first = first is not None and (float(first["position"]) == position or first.get("params_kept") == 1.0)
    halfway = [t for t in tries if float(t["position"]) == 0.75 * float(first["position"])] if same_first else []
    return {"outcome": outcome, "position": position, "params_kept": kept, "tries": len(tries),
            "retimes": sum(1 for t in tries if t.get("retime")), "halfway_same_network": len(halfway)}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (network, cell) and over all runs: how many walked, how each walk ended, and how many
    of the walked runs verified."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["network"], run["cell"]), []).append(run)
    groups[("all", "all")] = list(runs)
    rows = []
    for (network, cell), members in groups.items():
        walked = [r for r in members if r["walk"] is not None]
        ends = Counter(r["walk"]["outcome"] for r in walked)
        row = {"network": network, "cell": cell, "runs": len(members), "walked": len(walked),
               **{outcome.replace(" ", "_"): ends.get(outcome, 0) for outcome in OUTCOMES},
               "walked_verified": sum(1 for r in walked if r["verified"]),
               "halfway_same_network": sum(r["walk"]["halfway_same_network"] for r in walked)}
        rows.append(row)
    return rows


def keep_earlier(runs: list[dict[str, Any]], earlier: list[dict[str, Any]], runs_dir: Path) -> list[dict[str, Any]]:
    """``runs`` (read now from ``runs_dir``) and the runs of an earlier record whose directories
    are no longer under ``runs_dir``, marked ``"earlier": True``; a directory still there is
    read anew (its reading wins, even where it no longer counts)."""
    kept = [{**run, "earlier": True} for run in earlier if not (runs_dir / run["run"]).exists()]
    return sorted(runs + kept, key=lambda r: r["run"])


def _dense_params(module) -> float:
    """Every weight of ``module`` counted (the metric the pipeline's ``params_kept`` uses)."""
    from netbudget.metrics import MeasureContext, measure

    return measure(module, "params.dense", MeasureContext(input_shape=(1, 28, 28))).value


def _last_step(run_dir: Path) -> Path | None:
    steps = [p for p in (run_dir / "steps").glob("*/model.pt") if p.parent.name.isdigit()]
    return max(steps, key=lambda p: int(p.parent.name)) if steps else None


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """One finished ablation run's record (None: not a run directory, not finished, no re-check,
    its uniform guard shipped another network, or an older record whose networks are missing)."""
    meta = parse_run_name(run_dir.name)
    summary_path = run_dir / "final" / "summary.json"
    if meta is None or not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    recheck = summary.get("recheck")
    if not recheck or not recheck.get("tries") or (summary.get("guard") or {}).get("applied"):
        return None
    kept = None
    position = float(recheck["position"])
    held = [t for t in recheck["tries"] if t["passed"] and float(t["position"]) == position]
    if recheck["passed"] and position > 0 and held and "params_kept" not in held[-1]:
        from netbudget import load

        step = _last_step(run_dir)
        if step is None or not (run_dir / "final" / "model.pt").is_file():
            return None
        kept = _dense_params(load(run_dir / "final" / "model.pt")) / _dense_params(load(step))
    latency = [c for c in summary["constraints"] if c["key"] == "latency.mean"]
    threshold = None
    if latency:
        threshold = recheck["thresholds"]["latency.mean"] / latency[0]["original"]
    return {**meta, "walk": walk_outcome(recheck, kept), "verified": bool(summary["feasible"]),
            "threshold_ratio": threshold, "bound_ratio": latency[0]["bound"] / latency[0]["original"] if latency else None,
            "final_ratio": latency[0]["ratio"] if latency else None}


def runs_dir(parser: argparse.ArgumentParser, runs: Path | None) -> Path:
    """``--runs``, by default ``$NETBUDGET_CACHE/ablation/full``; a parser error when it is missing."""
    if runs is None:
        from netbudget.zoo import cache_dir

        runs = cache_dir() / "ablation" / "full"
    if not runs.is_dir():
        parser.error(f"--runs: no directory {runs}; run benchmarks/ablation.py first or point at its run directories")
    return runs


def read_runs(names: list[Path], read: Callable[[Path], dict[str, Any] | None]) -> list[dict[str, Any]]:
    """``read`` of every directory in ``names`` that gives a record, named by the directory (``run``)."""
    runs = []
    for run_dir in names:
        run = read(run_dir)
        if run is not None:
            run["run"] = run_dir.name
            runs.append(run)
    return runs


def with_earlier(runs: list[dict[str, Any]], out: Path, machine: str, runs_dir: Path,
                 kept: Callable[[dict[str, Any]], bool] = lambda run: True) -> list[dict[str, Any]]:
    """``runs`` and, where the record at ``out`` ran on ``machine``, its runs whose directories are
    gone (``keep_earlier``, for its runs that ``kept`` accepts; the others stay as recorded)."""
    if not out.is_file():
        return runs
    earlier = json.loads(out.read_text())
    if earlier["machine"] != machine:
        print(f"note: the earlier record ran on {earlier['machine']!r}, not this {machine!r}: its runs are dropped")
        return runs
    return (keep_earlier(runs, [r for r in earlier["runs"] if kept(r)], runs_dir)
            + [r for r in earlier["runs"] if not kept(r)])


def write(out: Path, result: dict[str, Any], markdown: Callable[[dict[str, Any]], list[str]]) -> None:
    """``result`` as JSON at ``out`` and its tables beside it (``.md``), printed too."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text("\n".join(markdown(result)) + "\n")
    print("\n".join(markdown(result)))


def earlier_lines(runs: list[dict[str, Any]], marked: str = "") -> list[str]:
    """The sentence that says how many ``runs`` the earlier record kept (none: no lines)."""
    earlier = sum(1 for r in runs if r.get("earlier"))
    if not earlier:
        return []
    return [f"{earlier} of the {len(runs)} runs are kept from the earlier record: their directories are gone{marked}.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 12 run directories")
    parser.add_argument("--fresh", action="store_true",
                        help="drop the earlier record's runs whose directories are gone")
    parser.add_argument("--runs", type=Path, default=None,
                        help="the ablation's run directories [$NETBUDGET_CACHE/ablation/full]")
    args = parser.parse_args()
    args.runs = runs_dir(parser, args.runs)
    names = sorted(p for p in args.runs.iterdir() if p.is_dir())
    if args.quick:
        names = names[:12]
    runs = read_runs(names, read_run)
    if not runs:
        parser.error(f"--runs: no finished ablation run with a re-check under {args.runs}")
    from netbudget.metrics import describe_machine

    machine = describe_machine()["cpu"]
    out = RESULTS / ("recheck_walks_quick.json" if args.quick else "recheck_walks.json")
    if not args.quick and not args.fresh:
        runs = with_earlier(runs, out, machine, args.runs)
    write(out, {"machine": machine, "runs_dir": str(args.runs), "summary": summarise(runs), "runs": runs}, markdown)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def markdown(result: dict[str, Any]) -> list[str]:
    """The tables of ``recheck_walks.md``."""
    lines = ["# Where the re-check walks ended", "",
             (f"Machine: {result['machine']}. Run directories: `{result['runs_dir']}`. A walk starts when a "
              "run's winner misses the searched threshold at the re-check; it ends on the winner re-timed, on a "
              "share that kept every width (the same network timed again), on a thinned network, or missed. "
              "A walk that skipped shares keeping every width would have thinned the `same network` ones."), ""]
    lines += earlier_lines(result["runs"], " (marked *earlier record*)")
    lines += [("| network | cell | runs | walked | winner | same network | thinned | missed | walked runs verified "
               "| halfway tries that timed the same network |"),
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["summary"]:
        lines.append(f"| {row['network']} | {row['cell']} | {row['runs']} | {row['walked']} | {row['winner']} | "
                     f"{row['same_network']} | {row['thinned']} | {row['missed']} | "
                     f"{row['walked_verified']}/{row['walked']} | {row['halfway_same_network']} |")
    walked = [r for r in result["runs"] if r["walk"]]
    lines += ["", "| run | ended | share | parameters kept | tries (re-times) | verified | final ratio |",
              "|---|---|---:|---:|---:|---|---:|"]
    for r in walked:
        w = r["walk"]
        kept = "-" if w["params_kept"] is None else f"{100 * w['params_kept']:.0f} %"
        name = f"{r['run']} (*earlier record*)" if r.get("earlier") else r["run"]
        lines.append(f"| {name} | {w['outcome']} | {w['position']:.4g} | {kept} | {w['tries']} ({w['retimes']}) | "
                     f"{'yes' if r['verified'] else 'NO'} | {_ratio(r['final_ratio'])} |")
    return lines


if __name__ == "__main__":
    main()
