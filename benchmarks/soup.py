"""Several final fine-tunes of one network: keep the best on validation data, or average their weights?

A run's final fine-tune decides much of its accuracy in the small budget: the same network
fine-tuned with other seeds spread 0.7-1.4 pt (sd) on machine E (``redraw.py``). The pipeline's
``final_tries`` keeps the try with the best validation top-1. Fine-tunes that start from the
same weights stay close to each other, so their weights can also be averaged (a "soup"; the
batch-norm statistics of the average are re-estimated on training data).

For each finished ablation run (``$NETBUDGET_CACHE/ablation/full/<network>-<cell>-<method>-s<seed>``)
this rebuilds the network that entered the final fine-tune (the last step's saved winner,
thinned as far as the run's re-check thinned it), fine-tunes it ``--tries`` times with the
pipeline's seeds (try k: ``seed + 2000 + 100003 k``; the first replays the run's single
fine-tune, and a run made with ``final_tries`` replays its recorded tries) and compares, by
test top-1, paired per run:
    ``one try``        the mean over the tries (what one fine-tune gives on average),
    ``best of 2``      of every pair of tries, the one with the better validation top-1,
    ``soup of 2``      every pair averaged,
    ``best of N`` / ``soup of N``  the same over all tries,
and, as controls, each try with only its batch-norm statistics re-estimated, and one fine-tune
as long as two tries and as all of them (the soups' compute).

Writes ``benchmarks/results/soup.json`` and ``soup.md``.

    python benchmarks/soup.py --networks resnet20 --cells lat50-small --methods exponential-final2-thin
    python benchmarks/soup.py --quick        # one run, 2 tries, same JSON shape
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
BN_BATCHES = 40  # batches of 128 training samples re-estimating a soup's batch-norm statistics
RULES = ("one try", "best of 2", "soup of 2", "best of all", "soup of all")
# controls: is it the batch-norm re-estimation, or the extra fine-tuning, rather than the average?
CONTROLS = ("one try, BN re-estimated", "one try, 2x epochs", "one try, all x epochs")


def soup(modules: list, data, *, batches: int = BN_BATCHES):
    """The element-wise mean of ``modules``' parameters and floating buffers (same architecture),
    its batch-norm statistics re-estimated on ``data`` (a ``Split``); a new module."""
    from netbudget.proxy import reestimate_batchnorm_
    from netbudget.train import average_weights

    return reestimate_batchnorm_(average_weights(modules), data, batches=batches).eval()


def rules(val: list[float], test: list[float], pair_test: dict[tuple[int, int], float],
          all_test: float) -> dict[str, float]:
    """Test top-1 (fraction) each rule keeps, from the tries' validation and test top-1 and the
    soups' test top-1 (``pair_test`` for every pair ``(i, j)``, ``all_test`` of all tries)."""
    pairs = list(itertools.combinations(range(len(test)), 2))
    best_pair = [test[i] if val[i] >= val[j] else test[j] for i, j in pairs]
    return {"one try": float(np.mean(test)), "best of 2": float(np.mean(best_pair)),
            "soup of 2": float(np.mean([pair_test[p] for p in pairs])),
            "best of all": float(test[int(np.argmax(val))]), "soup of all": float(all_test)}


def entering_final(run_dir: Path, model, data):
    """The run's ``_Run`` (ready to fine-tune) and the network its final fine-tune started from."""
    import json

    from redraw import _runner

    from netbudget.pipeline.run import load

    summary = json.loads((run_dir / "final" / "summary.json").read_text())
    if summary.get("floor") or not summary["steps"]:
        raise ValueError(f"{run_dir.name}: a floor run (no search); not studied")
    original = load(run_dir / "original.pt") if (run_dir / "original.pt").is_file() else model
    run = _runner(run_dir, original, data)
    if set(run.config.operators) != {"channels"}:
        raise ValueError(f"{run_dir.name}: operators {run.config.operators}; weights are averaged only "
                         "for channel pruning (masks and codebooks do not average)")
    run.data, run.original = data, original
    current = load(run_dir / "steps" / str(len(summary["steps"]) - 1) / "model.pt")
    position = (summary.get("recheck") or {}).get("position") or 0.0
    if position > 0:
        current = run._thinned(current, position)
    return run, current, summary


def controls(run, current, modules: list, data) -> dict[str, float]:
    """Test top-1 (fractions) of the controls: each try with only its batch-norm statistics
    re-estimated as a soup's are (mean over tries), and one fine-tune (the first try's seed)
    as long as two tries and as all tries together (the compute of the soups)."""
    from netbudget.proxy import reestimate_batchnorm_
    from netbudget.train import evaluate

    cfg = run.config
    bn = [evaluate(reestimate_batchnorm_(copy.deepcopy(m), data.train, batches=BN_BATCHES).eval(), data.test)
          for m in modules]
    out = {"one try, BN re-estimated": float(np.mean(bn))}
    for name, times in (("one try, 2x epochs", 2), ("one try, all x epochs", len(modules))):
        longer = run._fine_tuned(current, cfg.final_epochs * times, seed=cfg.seed + 2000, label=name)
        out[name] = evaluate(longer, data.test)
    return out


def run_one(run_dir: Path, model, data, tries: int, progress: bool = True) -> dict[str, Any]:
    """Tries, pair soups and the all-tries soup of one finished run (top-1 as fractions)."""
    from netbudget.pipeline.run import FINAL_TRY_SEED_STRIDE
    from netbudget.train import evaluate

    start = time.perf_counter()
    run, current, summary = entering_final(run_dir, model, data)
    cfg = run.config
    modules, records = [], []
    for k in range(tries):
        seed = cfg.seed + 2000 + FINAL_TRY_SEED_STRIDE * k
        tried = run._fine_tuned(current, cfg.final_epochs, seed=seed, label=f"try {k + 1}")
        modules.append(tried)
        records.append({"seed": seed, "val_top1": evaluate(tried, data.val), "test_top1": evaluate(tried, data.test)})
        if progress:
            print(f"  try {k + 1}/{tries}: validation {100 * records[-1]['val_top1']:.2f} %, "
                  f"test {100 * records[-1]['test_top1']:.2f} %", flush=True)
    # the run's own fine-tunes replayed: its recorded tries, else its single final top-1 (no repair)
    recorded = [t["test_top1"] for t in summary.get("final_tries") or []]
    if not recorded and not summary.get("repairs"):
        recorded = [summary["accuracy"]["final"]]
    replayed = all(abs(a - b["test_top1"]) < 1e-9 for a, b in zip(recorded, records))
    if progress and not replayed:
        print(f"  note: the run's fine-tunes gave {recorded}, here {[r['test_top1'] for r in records[:len(recorded)]]}")
    pairs = []
    for i, j in itertools.combinations(range(tries), 2):
        mixed = soup([modules[i], modules[j]], data.train)
        pairs.append({"tries": [i, j], "val_top1": evaluate(mixed, data.val), "test_top1": evaluate(mixed, data.test)})
    mixed = soup(modules, data.train)
    whole = {"val_top1": evaluate(mixed, data.val), "test_top1": evaluate(mixed, data.test)}
    kept = rules([r["val_top1"] for r in records], [r["test_top1"] for r in records],
                 {tuple(p["tries"]): p["test_top1"] for p in pairs}, whole["test_top1"])
    kept.update(controls(run, current, modules, data))
    if progress:
        print("  " + ", ".join(f"{rule} {100 * v:.2f} %" for rule, v in kept.items()), flush=True)
    return {"tries": records, "pairs": pairs, "soup_all": whole, "rules": kept, "replayed": replayed,
            "run_top1": summary["accuracy"]["final"], "seconds": time.perf_counter() - start}


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    """``soup.md`` next to ``out``: each run's rules and the paired gains over one try."""
    runs = results["runs"]
    lines = ["# Final fine-tunes of one network: best on validation data, or a weight average (soup)", "",
             (f"Machine: {results['machine']}. Test top-1 (%) each rule keeps; `one try` = the tries' mean. "
              f"Soups' batch-norm statistics re-estimated on {BN_BATCHES} x 128 training samples."), "",
             "| network | cell | method | seed | tries | " + " | ".join((*RULES, *CONTROLS)) + " | tries' test top-1 |",
             "|---|---|---|---:|---:|" + "---:|" * (len(RULES) + len(CONTROLS) + 1)]
    for r in runs:
        tops = " / ".join(f"{100 * t['test_top1']:.2f}" for t in r["tries"])
        lines.append(f"| {r['network']} | {r['cell']} | {r['method']} | {r['seed']} | {len(r['tries'])} | "
                     + " | ".join(f"{100 * r['rules'][rule]:.2f}" for rule in (*RULES, *CONTROLS)) + f" | {tops} |")
    if runs:
        lines += ["", "Gain over one try (pt, mean +- sd over runs, paired): " + ", ".join(
            f"{rule} {np.mean(g):+.2f} +- {np.std(g, ddof=1) if len(g) > 1 else float('nan'):.2f}"
            for rule in (*RULES[1:], *CONTROLS)
            for g in [[100 * (r['rules'][rule] - r['rules']['one try']) for r in runs]]) + "."]
        lines.append(f"Runs whose own fine-tunes replayed exactly: {sum(r['replayed'] for r in runs)} of {len(runs)}.")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    from ablation import _save
    from restart import add_run_arguments, finished_runs, open_results, run_seed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first finished run only, 2 tries")
    add_run_arguments(parser, networks="resnet20", cells="lat50-small",
                      methods="exponential-final2-thin,uniform-final2-thin")
    parser.add_argument("--tries", type=int, default=4, help="final fine-tunes per run (>= 2)")
    args = parser.parse_args()
    if args.tries < 2:
        raise SystemExit(f"--tries {args.tries}: expected at least 2 fine-tunes to compare")
    tries = 2 if args.quick else args.tries
    out = args.out or RESULTS / ("soup_quick.json" if args.quick else "soup.json")
    from netbudget.data import load_dataset
    from netbudget.zoo import cache_dir, pretrained

    todo = finished_runs(args.runs or cache_dir() / "ablation" / "full", args.networks, args.cells, args.methods)
    todo = todo[:1] if args.quick else todo
    results = open_results(out, "runs")
    data = load_dataset("fashion-mnist", seed=0)
    dense = {}  # network -> its checkpoint, loaded once (a run's own original.pt comes first)
    for network, cell, method, run_dir in todo:
        seed = run_seed(run_dir)
        if any((r["network"], r["cell"], r["method"], r["seed"], len(r["tries"])) == (network, cell, method, seed, tries)
               for r in results["runs"]):
            continue
        print(f"[soup] {run_dir.name}: {tries} tries", flush=True)
        if network not in dense:
            dense[network] = pretrained(network, "fashion-mnist")
        try:
            row = run_one(run_dir, dense[network], data, tries)
        except ValueError as error:
            print(f"  skipped: {error}", flush=True)
            continue
        results["runs"].append({"network": network, "cell": cell, "method": method, "seed": seed, **row})
        _save(out, results)  # each run as it finishes: an interrupted study resumes after it
    write_markdown(out, results)


if __name__ == "__main__":
    main()
