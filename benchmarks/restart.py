"""Does the searched network train better restarted from the dense weights than at the end of the search's chain?

A run prunes step by step: each step's winner is fine-tuned and the next step prunes it further,
so by the end the final network has been fine-tuned on the way (``step_epochs`` per step on its
ancestors) but only ``step_epochs + final_epochs`` after its last prune. The ablation's
headroom studies prune the dense network once and fine-tune for the run's whole budget; in vgg
``lat40-small`` on machine C the one-shot uniform widths (8-8-8-8-16-16-40) reached 89.17 %
there, while three uniform runs that ended on the very same widths reached 87.79-88.70 %.

For each finished ablation run (``$NETBUDGET_CACHE/ablation/full/<network>-<cell>-<method>-s<seed>``)
this takes the final network's layer widths, prunes the dense network once to the same widths
(channels chosen by the operator's own importance on the dense weights; the same widths time
alike, so the verified budget carries over) and fine-tunes it as the run's settings say, with
distillation from the dense network and the final fine-tune's seed:
    ``restart-final``  ``final_epochs`` (what the pipeline's final fine-tune costs),
    ``restart-total``  ``final_epochs`` plus ``step_epochs`` for each step the run took (its whole fine-tuning).
Reported: each arm's test top-1 against the run's own (``chain``), paired per run.

Writes ``benchmarks/results/restart.json`` and ``restart.md``.

    python benchmarks/restart.py --cells lat40-small,lat50-small --networks vgg   # every finished run
    python benchmarks/restart.py --quick                                          # one run, same JSON shape
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
ARMS = ("restart-final", "restart-total")


def _widths(module) -> dict[str, int]:
    """Output channels / features of every convolution and linear layer, by name."""
    from torch import nn

    return {name: m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            for name, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def restarted(model, input_shape, widths: dict[str, int], round_to: int):
    """``model`` pruned once to ``widths`` (layer name -> output channels, as the run's
    ``summary.json`` lists them), as a ``CompressedModel``; raises ``ValueError`` when the
    channel space cannot produce exactly those widths."""
    from netbudget.compress import compress as apply_config
    from netbudget.compress.channels import kept_channels
    from netbudget.space import build_space

    space = build_space(model, input_shape, operators=["channels"], max_channel_ratio=0.99, round_to=round_to)
    params = {}
    grid = np.linspace(0.0, 0.99, 991)
    for dim in space.dimensions:
        root = dim.name.split(":", 1)[1]
        count = space.channel_counts[root]
        want = widths[root]
        ratio = next((float(r) for r in grid if kept_channels(count, float(r), round_to) == want), None)
        if ratio is None:
            raise ValueError(f"{root}: no channel ratio keeps {want} of {count} channels (round_to {round_to})")
        params[dim.name] = min(max(ratio, dim.low), dim.high)
    candidate = apply_config(model, space, params)
    got = _widths(candidate.module)
    if any(got[name] != w for name, w in widths.items() if name in got):
        raise ValueError(f"restarted widths {got} differ from the run's {widths}")
    return candidate


def run_epochs(summary: dict[str, Any], cfg) -> dict[str, int]:
    """Each arm's epochs: ``restart-final`` the final fine-tune's, ``restart-total`` the run's
    whole fine-tuning, ``step_epochs`` for each step the run took (``summary["steps"]``: one for
    ``one-step``, whose ``run.yaml`` still says ``steps: 3``) plus ``final_epochs``. Repairs'
    fine-tunes are not counted."""
    return {"restart-final": cfg.final_epochs,
            "restart-total": cfg.final_epochs + len(summary["steps"]) * cfg.step_epochs}


def run_one(run_dir: Path, model, data) -> dict[str, Any]:
    """The chain's and both restart arms' test top-1 (fractions) of one finished run."""
    from netbudget.pipeline import RunConfig
    from netbudget.pipeline.run import _inherit_compression, finetune_fit
    from netbudget.train import evaluate, fine_tune

    summary = json.loads((run_dir / "final" / "summary.json").read_text())
    cfg = RunConfig.read(run_dir / "run.yaml")
    widths = {layer["layer"]: layer["out_after"] for layer in summary["layers"]}
    epochs = run_epochs(summary, cfg)
    row: dict[str, Any] = {"run": run_dir.name, "seed": cfg.seed, "chain_top1": summary["accuracy"]["final"],
                           "feasible": summary["feasible"], "widths": list(widths.values()), "epochs": epochs}
    pruned = restarted(model, data.input_shape, widths, summary["round_to"])  # one dependency graph for both arms
    for arm in ARMS:
        start = time.perf_counter()
        candidate = copy.deepcopy(pruned)
        _inherit_compression(candidate)
        fit = finetune_fit(epochs[arm], lr=cfg.finetune_lr, samples=cfg.finetune_samples, seed=cfg.seed + 2000)
        fine_tune(candidate, data.train, fit, teacher=model if cfg.distill else None, progress=False)
        row[f"{arm}_top1"] = evaluate(candidate.module, data.test)
        row[f"{arm}_seconds"] = time.perf_counter() - start
    return row


def _paired(rows: list[dict[str, Any]], arm: str) -> tuple[float, float, int]:
    diffs = [100 * (r[f"{arm}_top1"] - r["chain_top1"]) for r in rows]
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")
    return float(np.mean(diffs)), sd, len(diffs)


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    """``restart.md``: per run, and per (network, cell, method) the paired differences (points)."""
    lines = ["# The final network restarted from the dense weights", "",
             f"Machine: {results['machine']}. Test top-1; `chain` = the run's own final network.", "",
             ("| network | cell | method | runs | chain | restart-final | minus chain (pt) | restart-total | "
             "minus chain (pt) |"), "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results["rows"]:
        groups.setdefault((r["network"], r["cell"], r["method"]), []).append(r)
    for (network, cell, method), rows in groups.items():
        cells = [f"{100 * np.mean([r['chain_top1'] for r in rows]):.2f} %"]
        for arm in ARMS:
            diff, sd, _ = _paired(rows, arm)
            spread = "" if np.isnan(sd) else f" +- {sd:.2f}"
            cells += [f"{100 * np.mean([r[f'{arm}_top1'] for r in rows]):.2f} %", f"{diff:+.2f}{spread}"]
        lines.append(f"| {network} | {cell} | {method} | {len(rows)} | " + " | ".join(cells) + " |")
    for network, cell in sorted({(r["network"], r["cell"]) for r in results["rows"]}):
        rows = [r for r in results["rows"] if r["network"] == network and r["cell"] == cell]
        parts = []
        for arm in ARMS:
            diff, sd, n = _paired(rows, arm)
            ahead = sum(r[f"{arm}_top1"] > r["chain_top1"] for r in rows)
            parts.append(f"{arm} {diff:+.2f} +- {sd:.2f} pt (ahead in {ahead}/{n})")
        lines.append("")
        lines.append(f"* {network} / {cell}, every run: " + "; ".join(parts) + ".")
    lines += ["", "Per run:", "", "| run | widths | chain | restart-final | restart-total |", "|---|---|---:|---:|---:|"]
    for r in results["rows"]:
        lines.append(f"| {r['run']} | {'-'.join(map(str, r['widths']))} | {100 * r['chain_top1']:.2f} % | "
                     f"{100 * r['restart-final_top1']:.2f} % | {100 * r['restart-total_top1']:.2f} % |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def open_results(out: Path, key: str) -> dict[str, Any]:
    """The results file ``out`` (or a new one of this machine with an empty ``key`` list); stops
    when it holds another machine's results: one file names one machine."""
    from ablation import _fingerprint  # CPU model, AVX-512 extensions, threads

    results = json.loads(out.read_text()) if out.is_file() else {"machine": _fingerprint(), key: []}
    if results["machine"] != _fingerprint():
        raise SystemExit(f"--out {out}: its {key} were measured on {results['machine']!r}, this machine is "
                         f"{_fingerprint()!r}; pass --out with a file of this machine's own")
    return results


def add_run_arguments(parser: argparse.ArgumentParser, *, networks: str, cells: str, methods: str) -> None:
    """``--networks`` / ``--cells`` / ``--methods`` (comma-separated, defaults given), ``--runs`` and
    ``--out``: which finished ablation runs a study of them reads, and where it writes."""
    parser.add_argument("--networks", default=networks)
    parser.add_argument("--cells", default=cells)
    parser.add_argument("--methods", default=methods)
    parser.add_argument("--runs", type=Path, default=None, help="folder of the ablation's run directories "
                        "(default: $NETBUDGET_CACHE/ablation/full)")
    parser.add_argument("--out", type=Path, default=None)


def run_seed(run_dir: Path) -> int:
    """The seed of an ablation run directory (``<network>-<cell>-<method>-s<seed>``)."""
    return int(run_dir.name.rsplit("-s", 1)[1])


def finished_runs(runs: Path, networks: str, cells: str, methods: str, *,
                  missing_ok: bool = False) -> list[tuple[str, str, str, Path]]:
    """(network, cell, method, run directory) of every finished ablation run under ``runs`` of the
    comma-separated ``networks`` / ``cells`` / ``methods``; stops when there is none, unless
    ``missing_ok`` (then: an empty list)."""
    todo = []
    for network in networks.split(","):
        for cell in cells.split(","):
            for method in methods.split(","):
                for d in sorted(runs.glob(f"{network}-{cell}-{method}-s*")):
                    if (d / "final" / "summary.json").is_file() and d.name.removeprefix(
                            f"{network}-{cell}-{method}-s").isdigit():
                        todo.append((network, cell, method, d))
    if not todo and not missing_ok:
        raise SystemExit(f"no finished run of {networks} / {cells} / {methods} under {runs}")
    return todo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first finished vgg lat40-small run only")
    add_run_arguments(parser, networks="vgg", cells="lat40-small",
                      methods="exponential-thin,one-step-thin,uniform-thin,reference-thin")
    args = parser.parse_args()
    from ablation import _save

    from netbudget.data import load_dataset
    from netbudget.zoo import cache_dir, pretrained

    runs = args.runs or cache_dir() / "ablation" / "full"
    out = args.out or RESULTS / ("restart_quick.json" if args.quick else "restart.json")
    results = open_results(out, "rows")
    done = {r["run"] for r in results["rows"]}
    data = load_dataset("fashion-mnist", seed=0)
    todo = finished_runs(runs, args.networks, args.cells, args.methods)
    if args.quick:
        todo = todo[:1]
    for network, cell, method, d in todo:
        if d.name in done:
            continue
        print(f"[restart] {d.name}", flush=True)
        row = run_one(d, pretrained(network, "fashion-mnist", progress=False), data)
        results["rows"].append({"network": network, "cell": cell, "method": method, **row})
        _save(out, results)  # each run kept as it finishes: a stopped benchmark resumes
    write_markdown(out, results)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
