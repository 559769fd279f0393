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
    python benchmarks/seed_gap.py --cells lat50 --proxy-steps 50,200 --truths 1 --repeats 2 \
        --out benchmarks/results/seed_gap_la200.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
TOP = 3  # the step's best-scored candidates re-scored beside the seed and the winner
LOOKAHEAD_SEED = 5000  # re-score r uses look-ahead seed LOOKAHEAD_SEED + r (the runs used seed + trial number)
TRUTH_SEED = 7000  # truth m fine-tunes with seed TRUTH_SEED + m, whatever the candidate and the run (paired)


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


def rescore_step(run_dir: Path, step: int, study, record: dict[str, Any], data, repeats: int,
                 proxy_steps: list[int] | None = None, truths: int = 0,
                 cache: dict[tuple, Any] | None = None) -> dict[str, Any]:
    """``{trial: {role, recorded, feasible, calibration: [...], val: [...], by_steps, truth}}`` for
    step ``step`` of ``run_dir`` (fractions). ``proxy_steps``: look-ahead lengths, each scored
    ``repeats`` times (``by_steps[str(n)]``; ``calibration`` / ``val`` are the first length's;
    None: the run's own); ``truths``: fine-tunes as the step's winner is, tested. ``cache``:
    results by (start, params, settings), reused across runs (every run's step 0 starts from the
    same dense network and enqueues the same seed; scores and fine-tunes are seeded, so a
    repeat is the same number)."""
    # the step's space and candidates, rebuilt as redraw.py does
    from redraw import _apply, _runner, _step_base

    from netbudget.pipeline.run import finetune_fit, load
    from netbudget.proxy import ProxyConfig, score
    from netbudget.train import evaluate, fine_tune

    original = load(run_dir / "original.pt")
    run = _runner(run_dir, original, data)
    cfg = run.config
    current = _step_base(run_dir, step, study, original)
    space = run._space(current, run.space0.channel_counts)
    lengths = proxy_steps or [cfg.proxy_steps]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    cache = {} if cache is None else cache
    # every run of a network starts step 0 (and a last step searched from the original) from the
    # same dense network (original.pt)
    start = f"{run_dir.name.split('-', 1)[0]}, dense" if current is original else str(run_dir)

    def scored(params, steps: int) -> dict[str, list[float]]:
        key = ("proxy", start, tuple(sorted(params.items())), steps, repeats)
        if key not in cache:
            proxy = ProxyConfig(fidelity=cfg.proxy, lookahead_steps=steps)
            calibration, val = [], []
            for r in range(repeats):
                candidate = _apply(current, space, params)
                calibration.append(score(candidate, original, data.calibration, proxy, seed=LOOKAHEAD_SEED + r))
                val.append(evaluate(candidate.module, data.val))  # the same look-ahead, scored on held-out data
            cache[key] = {"calibration": calibration, "val": val}
        return cache[key]

    def fine_tuned(params) -> list[float]:
        key = ("truth", start, tuple(sorted(params.items())), truths, cfg.step_epochs, cfg.finetune_samples)
        if key not in cache:
            tops = []
            for m in range(truths):
                candidate = _apply(current, space, params)
                fit = finetune_fit(cfg.step_epochs, lr=cfg.finetune_lr, samples=cfg.finetune_samples, seed=TRUTH_SEED + m)
                fine_tune(candidate, data.train, fit, teacher=original if cfg.distill else None, progress=False)
                tops.append(evaluate(candidate.module, data.test))
            cache[key] = tops
        return cache[key]

    out = {}
    for number, role in picks(study, record).items():
        params = trials[number].params
        by_steps = {str(n): scored(params, n) for n in lengths}
        entry = {"role": role, "recorded": trials[number].value, "feasible": met_thresholds(trials[number], study),
                 **by_steps[str(lengths[0])], "by_steps": by_steps}
        if truths:
            entry["truth"] = fine_tuned(params)
        out[str(number)] = entry
        said = ", ".join(f"look-ahead {n}: {100 * np.mean(v['calibration']):.2f} %" for n, v in by_steps.items())
        after = f"; after the step's fine-tune {100 * np.mean(entry['truth']):.2f} %" if truths else ""
        print(f"  step {step} #{number} {role}: recorded {100 * trials[number].value:.2f} %, {said}{after}", flush=True)
    return out


def truth_summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Over step records whose ``rescored`` entries hold ``truth``: per look-ahead length and
    where it is scored (``calibration``: the slice the look-ahead trains on, as the pipeline
    scores; ``val``: held-out data), the Spearman of mean score with mean truth over the
    distinct candidates (None under 3), and in how many steps it ranks the winner above the seed; the
    winners' truth minus the seed's (points, one per step)."""
    from redraw import _spearman

    lengths = list(next(iter(steps[0]["rescored"].values()))["by_steps"])
    scorings = [(n, where) for n in lengths for where in ("calibration", "val")]
    distinct: dict[tuple, dict[str, Any]] = {}
    prefers, gaps = {f"{n}/{where}": 0 for n, where in scorings}, []
    for step in steps:
        seed, winner = step["rescored"][str(step["seed_trial"])], step["rescored"][str(step["winner"])]
        for c in step["rescored"].values():
            distinct[(tuple(c["by_steps"][lengths[0]]["calibration"]), tuple(c["truth"]))] = c
        if not step["winner_is_seed"]:
            gaps.append(100 * (np.mean(winner["truth"]) - np.mean(seed["truth"])))
            for n, where in scorings:
                prefers[f"{n}/{where}"] += bool(np.mean(winner["by_steps"][n][where]) > np.mean(seed["by_steps"][n][where]))
    truth = np.array([np.mean(c["truth"]) for c in distinct.values()])
    spearman = {f"{n}/{where}": _spearman(np.array([np.mean(c["by_steps"][n][where]) for c in distinct.values()]), truth)
                if len(distinct) >= 3 else None for n, where in scorings}
    return {"candidates": len(distinct), "spearman": spearman, "winner_over_seed": prefers,
            "steps": len(gaps), "winner_minus_seed": gaps}


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    runs = results["runs"]
    entries = [c for run in runs for s in run["steps"] for c in s.get("rescored", {}).values()]
    lengths = list(entries[0].get("by_steps", {"50": None})) if entries else ["50"]
    lines = ["# Does the search leave the uniform seed for a real proxy difference?", "",
             (f"Machine: {results['machine']}. Proxy scores in % (look-ahead: {' / '.join(lengths)} distilled SGD steps "
              "on the 2000-image calibration slice, scored there; the re-score table shows the first); gaps in points."), "",
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
    with_truth = [(run, s) for run in runs for s in run["steps"] if s.get("rescored")
                  and all("truth" in c for c in s["rescored"].values())]
    if with_truth:
        lines += _truth_lines(with_truth, truth_summary([s for _, s in with_truth]))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _truth_lines(steps: list[tuple[dict[str, Any], dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    """The ``--truths`` section for the (run, step) pairs whose candidates hold truths: each
    re-scored candidate after the step's own fine-tune, and how each look-ahead ranks against it."""
    scorings = [k.split("/") for k in summary["spearman"]]
    lines = ["", "## After the step's own fine-tune", "",
             ("Look-ahead columns: `<steps>/<where scored>` (calibration: the slice it trains on, as the pipeline "
              "scores; val: held-out data), mean %."), "",
             ("| network | cell | seed | step | trial | role | met the step's thresholds | "
              + " | ".join(summary["spearman"]) + " | after the step's fine-tune | minus seed |"),
             "|---|---|---:|---:|---:|---|---|" + "---:|" * (len(scorings) + 2)]
    for run, s in steps:
        seed = 100 * np.mean(s["rescored"][str(s["seed_trial"])]["truth"])
        for number, c in s["rescored"].items():
            truth = 100 * np.mean(c["truth"])
            scores = " | ".join(f"{100 * np.mean(c['by_steps'][n][where]):.2f}" for n, where in scorings)
            lines.append(f"| {run['network']} | {run['cell']} | {run['seed']} | {s['step']} | {number} | {c['role']} | "
                         f"{'yes' if c['feasible'] else 'no'} | {scores} | {truth:.2f} | "
                         f"{'-' if c['role'] == 'seed' else f'{truth - seed:+.2f}'} |")
    gaps = np.asarray(summary["winner_minus_seed"])
    lines.append("")
    if len(gaps):
        lines.append(f"The steps' winners minus the seed after the step's fine-tune: {gaps.mean():+.2f} pt "
                     f"({gaps.min():+.2f} to {gaps.max():+.2f}), {int((gaps > 0).sum())} of {len(gaps)} ahead.")
    lines += ["", (f"| look-ahead | Spearman with the fine-tuned top-1 ({summary['candidates']} distinct candidates) "
                   "| steps where it scores the winner above the seed |"), "|---|---:|---:|"]
    for k, rho in summary["spearman"].items():
        lines.append(f"| {k} | {'n/a' if rho is None else f'{rho:+.2f}'} | {summary['winner_over_seed'][k]} of {summary['steps']} |")
    return lines


def main() -> None:
    import optuna
    from ablation import _save
    from restart import add_run_arguments, finished_runs, open_results, run_seed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first finished run only, step 0, 2 repeats")
    add_run_arguments(parser, networks="resnet20", cells="lat50,lat50-small",
                      methods="exponential-soup2-bnfinal-thin")
    parser.add_argument("--steps", default="0", help="comma-separated steps to re-score (records cover every step)")
    parser.add_argument("--repeats", type=int, default=4, help="look-ahead seeds per re-scored candidate (>= 2)")
    parser.add_argument("--proxy-steps", default=None,
                        help="comma-separated look-ahead lengths to re-score with (default: the run's own)")
    parser.add_argument("--truths", type=int, default=0,
                        help="fine-tunes of each re-scored candidate as the step's winner is, tested (0: none)")
    args = parser.parse_args()
    if args.repeats < 2:
        raise SystemExit(f"--repeats {args.repeats}: expected at least 2 look-ahead seeds to compare")
    try:
        steps = {int(s) for s in args.steps.split(",")}
    except ValueError:
        raise SystemExit(f"--steps {args.steps!r}: expected comma-separated step numbers such as 0,1") from None
    try:
        lengths = None if args.proxy_steps is None else [int(n) for n in args.proxy_steps.split(",")]
    except ValueError:
        raise SystemExit(f"--proxy-steps {args.proxy_steps!r}: expected comma-separated step counts such as 50,200") from None
    if lengths is not None and min(lengths) < 1:
        raise SystemExit(f"--proxy-steps {args.proxy_steps!r}: every look-ahead needs at least 1 step")
    if args.truths < 0:
        raise SystemExit(f"--truths {args.truths}: expected 0 (none) or more fine-tunes per candidate")
    repeats, steps = (2, {0}) if args.quick else (args.repeats, steps)
    out = args.out or RESULTS / ("seed_gap_quick.json" if args.quick else "seed_gap.json")
    from netbudget.data import load_dataset
    from netbudget.zoo import cache_dir

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    todo = finished_runs(args.runs or cache_dir() / "ablation" / "full", args.networks, args.cells, args.methods)
    todo = todo[:1] if args.quick else todo
    results = open_results(out, "runs")
    data = load_dataset("fashion-mnist", seed=0)
    cache: dict[tuple, Any] = {}
    for network, cell, method, run_dir in todo:
        seed = run_seed(run_dir)
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
                record["rescored"] = rescore_step(run_dir, step, study, record, data, repeats, lengths, args.truths, cache)
            rows.append(record)
        results["runs"].append({"network": network, "cell": cell, "method": method, "seed": seed, "steps": rows})
        _save(out, results)  # each run as it finishes: an interrupted study resumes after it
    write_markdown(out, results)


if __name__ == "__main__":
    main()
