"""Do more look-ahead draws pick a better network from a step's candidates than one draw?

A search step scores each candidate with one look-ahead draw (``proxy_steps`` SGD steps from
one seed) and keeps the best-scored feasible one. In the small fine-tuning budget one draw is
noisy: on machine D the same resnet20 widths fine-tuned with ten seeds spanned 81.97-87.34 %
(restart_d.md). This asks, for the last step (``--steps last``) or every step of each finished
ablation run, whether scoring the step's feasible candidates with more draws would have kept a
network that trains better. On machine E's resnet20 ``lat50-small`` runs it would not (+0.02 pt:
a candidate's draws spread far less than the candidates do; redraw.md).

For each (run, step): the step's completed candidates that met its thresholds are rebuilt from
the step's starting network (the previous step's saved model, the dense one for step 0) and
     ``draws``   scored ``--draws`` times: draw 0 is the run's own score (``trial.value``),
                 draws 1.. repeat the run's proxy with other seeds;
     ``truth``   fine-tuned ``--truths`` times as a last step's winner is (``step_epochs``,
                 then ``final_epochs``, distilled, the run's fine-tuning samples) and tested.
Selection rules are then compared on the mean truth of the candidate each keeps: ``1 draw``
(averaged over which of the draws is the one), ``mean of k draws`` (averaged over the
subsets), ``top-3 redrawn`` (one draw each, the best three by it scored with two more draws,
kept by their mean of three: six extra look-aheads), the best and the mean candidate.

Writes ``benchmarks/results/redraw.json`` and ``redraw.md`` (``--out`` for another machine's).

    python benchmarks/redraw.py --networks resnet20 --cells lat50-small --steps last
    python benchmarks/redraw.py --quick                       # one step, 3 candidates, same JSON shape
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
TOP = 3  # candidates the "top-3 redrawn" rule re-scores
REDRAWS = 2  # extra draws each of them gets


def _mean_choice(draws: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean truth of the candidate with the best mean over ``k`` of its draws, averaged over
    every set of ``k`` draw indices (the same indices for every candidate, as a rule would
    draw them). ``draws``: candidates x draws; ``truth``: per candidate."""
    picks = [truth[int(np.argmax(draws[:, list(idx)].mean(axis=1)))]
             for idx in itertools.combinations(range(draws.shape[1]), k)]
    return float(np.mean(picks))


def _top_redrawn(draws: np.ndarray, truth: np.ndarray, top: int = TOP, redraws: int = REDRAWS) -> float:
    """Mean truth of the "top-``top`` redrawn" rule: ranked by draw ``i``, the best ``top``
    re-scored by ``redraws`` other draws and kept by the mean, averaged over ``i`` and over
    which other draws (the first ``redraws`` after ``i``, cyclically)."""
    n = draws.shape[1]
    picks = []
    for i in range(n):
        best = np.argsort(-draws[:, i], kind="stable")[:top]
        cols = [(i + j) % n for j in range(redraws + 1)]
        picks.append(truth[best[int(np.argmax(draws[np.ix_(best, cols)].mean(axis=1)))]])
    return float(np.mean(picks))


def rules(draws: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean truth (fraction) kept by each selection rule over one step's candidates."""
    n = draws.shape[1]
    out = {f"mean of {k}" if k > 1 else "1 draw": _mean_choice(draws, truth, k) for k in range(1, n + 1)}
    if len(truth) > TOP and n > REDRAWS:
        out["top-3 redrawn"] = _top_redrawn(draws, truth)
    out["best"] = float(truth.max())
    out["mean"] = float(truth.mean())
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(set(a)) > 1 and len(set(b)) > 1 else None


def summarise(draws: list[list[float]], truths: list[list[float]]) -> dict[str, Any]:
    """One step's numbers from its candidates' draws and truths (fractions): each rule's kept
    truth, rank correlations of one draw and of the mean of all with the mean truth, and the
    spreads (points) that say whether draws can rank at all: draw-to-draw within a candidate,
    candidate-to-candidate in mean draw and in mean truth, truth seed-to-seed."""
    d, t = np.asarray(draws, dtype=float), np.asarray(truths, dtype=float)
    truth = t.mean(axis=1)
    one = [_spearman(d[:, i], truth) for i in range(d.shape[1])]
    one = [x for x in one if x is not None]
    return {
        "rules": rules(d, truth),
        "spearman_1_draw": float(np.mean(one)) if one else None,
        "spearman_mean_draws": _spearman(d.mean(axis=1), truth),
        "draw_sd_within": float(100 * np.sqrt(np.mean(d.var(axis=1, ddof=1)))) if d.shape[1] > 1 else None,
        "draw_sd_between": float(100 * d.mean(axis=1).std(ddof=1)),
        "truth_sd_within": float(100 * np.sqrt(np.mean(t.var(axis=1, ddof=1)))) if t.shape[1] > 1 else None,
        "truth_sd_between": float(100 * truth.std(ddof=1)),
    }


def _runner(run_dir: Path, model, data):
    """The run's own ``_Run`` as far as building step spaces goes: its settings, input shape and
    first space (whose channel counts bound ``--min-keep`` in every later step)."""
    from netbudget.pipeline import RunConfig
    from netbudget.pipeline.run import _Run

    cfg = RunConfig.read(run_dir / "run.yaml", run=True)
    run = _Run(run_dir, cfg, progress=False)
    run.input_shape = tuple(data.input_shape)
    run.space0 = run._space(model, None)
    return run


def _step_study(run_dir: Path, t: int):
    """The Optuna study of step ``t`` of a finished run, from the run's own storage."""
    import optuna

    from netbudget.pipeline import RunConfig
    from netbudget.pipeline.run import open_storage

    cfg = RunConfig.read(run_dir / "run.yaml", run=True)
    return optuna.load_study(storage=open_storage(cfg.storage), study_name=f"step-{t}")


def _feasible(study) -> tuple[list[Any], dict[str, float]]:
    """The study's completed, scored candidates that met its thresholds, and the thresholds."""
    from optuna.trial import TrialState

    from netbudget.pipeline.run import _meets
    from netbudget.search.bounds import measured

    thresholds = study.user_attrs["thresholds"]
    trials = [x for x in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if x.value is not None and "probe" not in x.user_attrs and _meets(measured(x), thresholds)]
    return trials, thresholds


def step_candidates(run_dir: Path, t: int) -> tuple[list[Any], dict[str, float]]:
    """Step ``t``'s completed, scored candidates that met its thresholds (its thinned variants
    and fallback points included: the confirmation ranks them too), and the thresholds."""
    return _feasible(_step_study(run_dir, t))


def run_step(run_dir: Path, t: int, model, data, draws: int, truths: int, limit: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Draws and truths (fractions) of step ``t``'s feasible candidates in one finished run.
    ``model``: the dense network (the run's own ``original.pt`` is used where it was saved)."""
    from netbudget.pipeline.run import finetune_fit, load
    from netbudget.proxy import ProxyConfig, score
    from netbudget.train import evaluate, fine_tune

    original = load(run_dir / "original.pt") if (run_dir / "original.pt").is_file() else model
    run = _runner(run_dir, original, data)
    cfg = run.config
    study = _step_study(run_dir, t)
    current = _step_base(run_dir, t, study, original)
    space = run._space(current, run.space0.channel_counts)
    trials, thresholds = _feasible(study)
    trials = trials[:limit] if limit else trials
    if len(trials) < 2:
        raise ValueError(f"{run_dir.name} step {t}: {len(trials)} feasible candidate(s); nothing to rank")
    # the step's winner rebuilt here must have the shapes of the model the run saved: the space is the run's
    if _shapes(_apply(current, space, study.user_attrs["winner_params"]).module) != _shapes(
            load(run_dir / "steps" / str(t) / "model.pt")):
        raise ValueError(f"{run_dir.name} step {t}: the winner rebuilt differs from the model the run saved")
    proxy = ProxyConfig(fidelity=cfg.proxy, lookahead_steps=cfg.proxy_steps)

    def draw(params, seed: int) -> float:
        return score(_apply(current, space, params), original, data.calibration, proxy, seed=seed)

    # the run's own draw replayed: the scores here are the run's (same machine, same seed); on
    # another CPU kernels may differ in the last digits, so a miss is reported, not raised
    replayed = draw(trials[0].params, cfg.seed + trials[0].number)
    if progress and abs(replayed - trials[0].value) > 1e-9:
        print(f"  note: trial #{trials[0].number} scored {replayed:.4f} here, {trials[0].value:.4f} in the run")
    rows = []
    start = time.perf_counter()
    for i, trial in enumerate(trials):
        scores = [float(trial.value)]
        scores += [draw(trial.params, cfg.seed + trial.number + 1000 * k) for k in range(1, draws)]
        tops = []
        for m in range(truths):
            candidate = _apply(current, space, trial.params)
            for epochs, seed in ((cfg.step_epochs, cfg.seed + 1000 + t + 7919 * m),
                                 (cfg.final_epochs, cfg.seed + 2000 + 7919 * m)):
                if epochs > 0:
                    fit = finetune_fit(epochs, lr=cfg.finetune_lr, samples=cfg.finetune_samples, seed=seed)
                    fine_tune(candidate, data.train, fit, teacher=original if cfg.distill else None, progress=False)
            tops.append(evaluate(candidate.module, data.test))
        rows.append({"trial": trial.number, "draws": scores, "truths": tops})
        if progress:
            print(f"  #{trial.number}: draws {' '.join(f'{100 * s:.2f}' for s in scores)} | "
                  f"truth {' '.join(f'{100 * x:.2f}' for x in tops)} ({i + 1}/{len(trials)})", flush=True)
    return {"step": t, "thresholds": thresholds, "replayed": [float(trials[0].value), replayed], "candidates": rows,
            "seconds": time.perf_counter() - start,
            **summarise([r["draws"] for r in rows], [r["truths"] for r in rows])}


def _step_base(run_dir: Path, t: int, study, original):
    """The network step ``t`` compressed: ``original`` for the first step and for a last step
    searched from the original network (``last_step`` original, study attribute ``base``), else
    step ``t - 1``'s winner as the run saved it."""
    from netbudget.pipeline.run import load

    if t == 0 or study.user_attrs.get("base") == "original":
        return original
    return load(run_dir / "steps" / str(t - 1) / "model.pt")


def _apply(current, space, params):
    """``params`` applied to ``current`` as a step's objective does (earlier compression kept)."""
    from netbudget.compress import compress as apply_config
    from netbudget.pipeline.run import _inherit_compression

    candidate = apply_config(copy.deepcopy(current), space, params)
    _inherit_compression(candidate)
    return candidate


def _shapes(module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in module.parameters()]


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    """``redraw.md``: per step the mean truth each rule keeps and the spreads; then the paired
    gain of each rule over one draw (points) across every step."""
    entries = results["steps"]
    names = list(dict.fromkeys(n for e in entries for n in e["rules"]))  # a small step lacks "top-3 redrawn"
    lines = ["# Ranking a step's candidates by more look-ahead draws", "",
             (f"Machine: {results['machine']}. Each rule's column: mean test top-1 (over the truth seeds) of the "
              "candidate it keeps; `1 draw` is what a step does now. Spreads in points: draws of one candidate "
              "(within) against the spread of candidates' mean draws (between); the same for the truth."), "",
             "| run | step | candidates | " + " | ".join(names)
             + " | Spearman 1 draw / mean | draw sd within / between "
             "| truth sd within / between |",
             "|---|---:|---:|" + "---:|" * len(names) + "---|---|---|"]
    for e in entries:
        rho = "/".join("-" if x is None else f"{x:+.2f}" for x in (e["spearman_1_draw"], e["spearman_mean_draws"]))
        lines.append(f"| {e['run']} | {e['step']} | {len(e['candidates'])} | "
                     + " | ".join(f"{100 * e['rules'][n]:.2f} %" if n in e["rules"] else "-" for n in names)
                     + f" | {rho} | {_sd(e['draw_sd_within'])} / {e['draw_sd_between']:.2f} | "
                       f"{_sd(e['truth_sd_within'])} / {e['truth_sd_between']:.2f} |")
    lines += ["", "Gain over `1 draw` (points, paired by step: mean +- sd, steps ahead / behind):", ""]
    for name in names:
        if name == "1 draw":
            continue
        diffs = np.array([100 * (e["rules"][name] - e["rules"]["1 draw"]) for e in entries if name in e["rules"]])
        if len(diffs):
            sd = f" +- {diffs.std(ddof=1):.2f}" if len(diffs) > 1 else ""
            lines.append(f"* {name}: {diffs.mean():+.2f}{sd} ({int((diffs > 1e-9).sum())} ahead, "
                         f"{int((diffs < -1e-9).sum())} behind, {len(diffs)} steps)")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _sd(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main() -> None:
    from restart import add_run_arguments, finished_runs, open_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the first run's last step, 3 candidates, 2 draws, 2 truths")
    add_run_arguments(parser, networks="resnet20", cells="lat50-small", methods="exponential-thin")
    parser.add_argument("--steps", default="last", help="'last' or 'all' steps of each run")
    parser.add_argument("--draws", type=int, default=5, help="look-ahead draws per candidate (the run's own included)")
    parser.add_argument("--truths", type=int, default=4, help="fine-tuning seeds per candidate")
    args = parser.parse_args()
    if args.steps not in ("last", "all"):
        parser.error(f"--steps: expected 'last' or 'all', got {args.steps!r}")
    if args.draws < 2 or args.truths < 1:
        parser.error(f"--draws must be >= 2 and --truths >= 1, got {args.draws} and {args.truths}")
    from ablation import _save

    from netbudget.data import load_dataset
    from netbudget.zoo import cache_dir, pretrained

    runs = args.runs or cache_dir() / "ablation" / "full"
    out = args.out or RESULTS / ("redraw_quick.json" if args.quick else "redraw.json")
    draws, truths = (2, 2) if args.quick else (args.draws, args.truths)
    results = open_results(out, "steps")
    todo = []
    for network, cell, method, d in finished_runs(runs, args.networks, args.cells, args.methods):
        steps = [s["step"] for s in json.loads((d / "final" / "summary.json").read_text())["steps"]]
        todo += [(network, cell, method, d, t) for t in (steps[-1:] if args.steps == "last" else steps)]
    if args.quick:
        todo = todo[:1]
    data = load_dataset("fashion-mnist", seed=0)
    for network, cell, method, d, t in todo:
        if any(e["run"] == d.name and e["step"] == t and len(e["candidates"][0]["draws"]) == draws
               and len(e["candidates"][0]["truths"]) == truths for e in results["steps"]):
            continue
        print(f"[redraw] {d.name} step {t}", flush=True)
        entry = run_step(d, t, pretrained(network, "fashion-mnist", progress=False), data, draws, truths,
                         limit=3 if args.quick else None)
        results["steps"] = [e for e in results["steps"] if not (e["run"] == d.name and e["step"] == t)]
        results["steps"].append({"network": network, "cell": cell, "method": method, "run": d.name, **entry})
        _save(out, results)  # each step kept as it finishes: a stopped benchmark resumes
    write_markdown(out, results)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
