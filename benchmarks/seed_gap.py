"""Does the search leave the uniform seed for a real proxy difference or for the proxy's noise?

Each cooling step enqueues the uniform configuration meeting its thresholds (the *seed*) and
the winner is the best proxy score among the candidates that meet them (among near-ties,
``tie_tolerance`` = 0.2 pt, the one using the most budget). In resnet20 ``lat50`` the default
ends 0.1-0.2 pt under the uniform runs (machines C, F), where uniform is lossless; one remedy
would keep the seed unless a candidate beats it by more than the proxy's noise. This measures
whether that could work:

* from the records of every step of each finished ablation run
  (``$NETBUDGET_CACHE/ablation/full/<network>-<cell>-<method>-s<seed>``): the seed's proxy
  score, the winner's, the step's best, the seed's rank, and whether the seed won;
* for the steps in ``--steps`` (0: the dense network is the step's start), the seed, the
  winner and the step's three best-scored candidates re-scored ``--repeats`` times with other
  look-ahead seeds (the pipeline's proxy: 50 distilled SGD steps on the calibration slice,
  scored there) and, from the same look-ahead, on the validation split. Differences to the
  seed are paired by look-ahead seed.

Writes ``benchmarks/results/seed_gap.json`` and ``seed_gap.md``.

    python benchmarks/seed_gap.py --cells lat50,lat50-small      # every finished run
    python benchmarks/seed_gap.py --quick                        # one run, 2 repeats, same JSON shape
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
TOP = 3  # the step's best-scored candidates re-scored beside the seed and the winner
LOOKAHEAD_SEED = 5000  # re-score r uses look-ahead seed LOOKAHEAD_SEED + r (the runs used seed + trial number)


def step_record(study) -> dict[str, Any] | None:
    """The seed's and the winner's proxy scores (fractions) in one finished step's ``study``,
    the step's best, the seed's rank among the scored candidates (0 = best) and whether it won;
    None for a step that scored nothing or enqueued no seed (a step at the floor)."""
    from optuna.trial import TrialState

    scored = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    seed = next((t for t in scored if t.user_attrs.get("seed")), None)
    if seed is None or "winner" not in study.user_attrs:
        return None
    winner = next(t for t in scored if t.number == study.user_attrs["winner"])
    return {"n": len(scored), "seed_trial": seed.number, "seed_score": seed.value, "winner": winner.number,
            "winner_score": winner.value, "best_score": max(t.value for t in scored),
            "seed_rank": sum(t.value > seed.value for t in scored), "winner_is_seed": winner.number == seed.number}


def picks(study, record: dict[str, Any]) -> dict[int, str]:
    """Trial number -> role (``seed``, ``winner``, ``top``) of the candidates re-scored in a step."""
    from optuna.trial import TrialState

    scored = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    chosen = {record["seed_trial"]: "seed", record["winner"]: "winner"}
    for t in sorted(scored, key=lambda t: -t.value)[:TOP]:
        chosen.setdefault(t.number, "top")
    return chosen


def met_thresholds(trial, study) -> bool:
    """Whether ``trial``'s single measurements met its step's thresholds (a rival the step could keep)."""
    from netbudget.pipeline.run import _meets
    from netbudget.search.bounds import measured

    return _meets(measured(trial), study.user_attrs["thresholds"])


def paired_gap(scores: list[float], seed_scores: list[float]) -> tuple[float, float]:
    """Mean and sd (points) of a candidate's re-scores minus the seed's, paired by look-ahead seed."""
    diff = 100 * (np.asarray(scores) - np.asarray(seed_scores))
    return float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else float("nan")


def rescore_step(run_dir: Path, step: int, study, record: dict[str, Any], data, repeats: int) -> dict[str, Any]:
    """``{trial: {role, recorded, calibration: [...], val: [...]}}`` for step ``step`` of ``run_dir``."""
    # the step's space and candidates, rebuilt as redraw.py does
    from redraw import _apply, _runner

    from netbudget.pipeline.run import load
    from netbudget.proxy import ProxyConfig, score
    from netbudget.train import evaluate

    original = load(run_dir / "original.pt")
    run = _runner(run_dir, original, data)
    current = original if step == 0 else load(run_dir / "steps" / str(step - 1) / "model.pt")
    space = run._space(current, run.space0.channel_counts)
    proxy = ProxyConfig(fidelity=run.config.proxy, lookahead_steps=run.config.proxy_steps)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    out = {}
    for number, role in picks(study, record).items():
        calibration, val = [], []
        for r in range(repeats):
            candidate = _apply(current, space, trials[number].params)
            calibration.append(score(candidate, original, data.calibration, proxy, seed=LOOKAHEAD_SEED + r))
            val.append(evaluate(candidate.module, data.val))  # the same look-ahead, scored on held-out data
        out[str(number)] = {"role": role, "recorded": trials[number].value, "feasible": met_thresholds(trials[number], study),
                            "calibration": calibration, "val": val}
        print(f"  step {step} #{number} {role}: recorded {100 * trials[number].value:.2f} %, re-scored "
              f"{100 * np.mean(calibration):.2f} % (val {100 * np.mean(val):.2f} %)", flush=True)
    return out


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    runs = results["runs"]
    lines = ["# Does the search leave the uniform seed for a real proxy difference?", "",
             (f"Machine: {results['machine']}. Proxy scores in % (look-ahead: 50 distilled SGD steps on the "
              "2000-image calibration slice, scored there); gaps in points."), "",
             "## Every step, from the runs' records", "",
             "| network | cell | method | seed | step | scored | seed's score | winner's | step's best | seed's rank | seed won |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        for s in run["steps"]:
            lines.append(f"| {run['network']} | {run['cell']} | {run['method']} | {run['seed']} | {s['step']} | {s['n']} | "
                         f"{100 * s['seed_score']:.2f} | {100 * s['winner_score']:.2f} | {100 * s['best_score']:.2f} | "
                         f"{s['seed_rank'] + 1} | {'yes' if s['winner_is_seed'] else 'no'} |")
    lines.append("")
    for cell in sorted({r["cell"] for r in runs}):
        steps = [s for r in runs if r["cell"] == cell for s in r["steps"]]
        gaps = [100 * (s["winner_score"] - s["seed_score"]) for s in steps]
        lines.append(f"{cell}: the seed won {sum(s['winner_is_seed'] for s in steps)} of {len(steps)} steps; winner minus "
                     f"seed {np.median(gaps):+.2f} pt median ({min(gaps):+.2f} to {max(gaps):+.2f}).")
    rescored = [(run, s) for run in runs for s in run["steps"] if s.get("rescored")]
    if rescored:
        lines += ["", "## Re-scored with other look-ahead seeds", "",
                  ("| network | cell | seed | step | trial | role | met the step's thresholds | recorded | re-scored (mean +- sd) "
                   "| minus seed, paired | on val (mean +- sd) | minus seed on val, paired |"),
                  "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"]
        sds, curse, gaps_by = [], [], {"winner": [], "feasible": [], "any": []}
        for run, s in rescored:
            base = s["rescored"][str(s["seed_trial"])]
            for number, c in s["rescored"].items():
                cal, val = 100 * np.asarray(c["calibration"]), 100 * np.asarray(c["val"])
                sd = cal.std(ddof=1) if len(cal) > 1 else float("nan")
                sds.append(sd)
                if c["role"] == "seed":
                    gaps = ("-", "-")
                else:
                    (gc, sc), (gv, sv) = paired_gap(c["calibration"], base["calibration"]), paired_gap(c["val"], base["val"])
                    gaps = (f"{gc:+.2f} +- {sc:.2f}", f"{gv:+.2f} +- {sv:.2f}")
                    for kind, member in (("winner", c["role"] == "winner"), ("feasible", c["feasible"]), ("any", True)):
                        if member:
                            gaps_by[kind].append((gc, gv))
                if c["role"] != "seed":
                    curse.append(100 * c["recorded"] - cal.mean())
                lines.append(f"| {run['network']} | {run['cell']} | {run['seed']} | {s['step']} | {number} | {c['role']} | "
                             f"{'yes' if c['feasible'] else 'no'} | {100 * c['recorded']:.2f} | {cal.mean():.2f} +- {sd:.2f} | "
                             f"{gaps[0]} | "
                             f"{val.mean():.2f} +- {(val.std(ddof=1) if len(val) > 1 else float('nan')):.2f} | {gaps[1]} |")
        lines += ["", (f"One candidate's score spreads {np.nanmedian(sds):.2f} pt (median sd over look-ahead seeds). "
                       "Minus the seed, re-scored and paired (mean, range, ahead):"), ""]
        labels = {"winner": "the steps' winners", "feasible": "every re-scored candidate that met the step's thresholds",
                  "any": "every re-scored candidate"}
        for kind, label in labels.items():
            on_cal, on_val = (np.array([g[i] for g in gaps_by[kind]]) for i in (0, 1))
            if len(on_cal):
                lines.append(f"* {label}: {on_cal.mean():+.2f} pt ({on_cal.min():+.2f} to {on_cal.max():+.2f}), "
                             f"{int((on_cal > 0).sum())} of {len(on_cal)} ahead; on validation data {on_val.mean():+.2f} pt "
                             f"({on_val.min():+.2f} to {on_val.max():+.2f})")
        lines += ["", (f"The recorded scores of the candidates beside the seed minus their re-scores: {np.mean(curse):+.2f} "
                       "pt on average (a step's best draws are picked partly for their luck).")]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    import optuna
    from ablation import _save
    from restart import add_run_arguments, finished_runs, open_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first finished run only, step 0, 2 repeats")
    add_run_arguments(parser, networks="resnet20", cells="lat50,lat50-small",
                      methods="exponential-soup2-bnfinal-thin")
    parser.add_argument("--steps", default="0", help="comma-separated steps to re-score (records cover every step)")
    parser.add_argument("--repeats", type=int, default=4, help="look-ahead seeds per re-scored candidate (>= 2)")
    args = parser.parse_args()
    if args.repeats < 2:
        raise SystemExit(f"--repeats {args.repeats}: expected at least 2 look-ahead seeds to compare")
    try:
        steps = {int(s) for s in args.steps.split(",")}
    except ValueError:
        raise SystemExit(f"--steps {args.steps!r}: expected comma-separated step numbers such as 0,1") from None
    repeats, steps = (2, {0}) if args.quick else (args.repeats, steps)
    out = args.out or RESULTS / ("seed_gap_quick.json" if args.quick else "seed_gap.json")
    from netbudget.data import load_dataset
    from netbudget.zoo import cache_dir

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    todo = finished_runs(args.runs or cache_dir() / "ablation" / "full", args.networks, args.cells, args.methods)
    todo = todo[:1] if args.quick else todo
    results = open_results(out, "runs")
    data = load_dataset("fashion-mnist", seed=0)
    for network, cell, method, run_dir in todo:
        seed = int(run_dir.name.rsplit("-s", 1)[1])
        if any((r["network"], r["cell"], r["method"], r["seed"]) == (network, cell, method, seed) for r in results["runs"]):
            continue
        print(f"[seed-gap] {run_dir.name}", flush=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'study.db'}")
        rows = []
        names = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith("step-")]
        for step in sorted(int(name.removeprefix("step-")) for name in names):
            study = optuna.load_study(study_name=f"step-{step}", storage=storage)
            record = step_record(study)
            if record is None:
                continue
            record = {"step": step, **record}
            if step in steps:
                record["rescored"] = rescore_step(run_dir, step, study, record, data, repeats)
            rows.append(record)
        results["runs"].append({"network": network, "cell": cell, "method": method, "seed": seed, "steps": rows})
        _save(out, results)  # each run as it finishes: an interrupted study resumes after it
    write_markdown(out, results)


if __name__ == "__main__":
    main()
