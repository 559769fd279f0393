"""How much of a paired difference in final top-1 is the held-out split's own sampling?

The ablation's scoreboard judges "default >= uniform" on the paired mean test top-1 over seeds.
The test split is fixed (Fashion-MNIST: 10000 images), so the seeds' differences share its
sampling error, which their spread over seeds does not show: a 0.2 pt gap can be the images
drawn, not the networks. For each seed of two methods' finished runs of one cell, both final
networks (``final/model.pt``) classify every image of the validation split (5000 images, which
no step or candidate choice of a soup run looks at) and the test split; per split this reports

* the paired mean difference (points) over seeds and its sd over seeds;
* a bootstrap interval of that mean over the split's images (``--boots`` resamples of the
  images, the networks held fixed): the part of the uncertainty the finite split alone adds;
* the same over both splits pooled (``val+test``: the estimate with the most images behind it);
* each network's top-1 recomputed here against the one its run recorded (a check that the
  saved network is the one that was scored).

Writes ``benchmarks/results/heldout.json`` and ``heldout.md``.

    python benchmarks/heldout.py --cells lat50 --methods exponential-soup2-bnfinal-thin \\
        --versus uniform-soup2-bnfinal-thin
    python benchmarks/heldout.py --quick              # the first pair's first two seeds, 200 resamples
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def correct(model, split, batch_size: int = 512) -> np.ndarray:
    """Per image of ``split``: 1 where ``model``'s top-1 class is the label, else 0."""
    import torch

    model.eval()
    hits = []
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            logits = model(split.x[start:start + batch_size])
            hits.append((logits.argmax(1) == split.y[start:start + batch_size]).numpy())
    return np.concatenate(hits).astype(np.int8)


def paired_split(a: list[np.ndarray], b: list[np.ndarray], boots: int, seed: int = 0) -> dict[str, Any]:
    """``a[i]`` / ``b[i]``: per-image correctness of seed i's two networks on one split. The mean
    difference a - b over seeds (points), its sd over seeds, and the 2.5 / 97.5 % bootstrap
    quantiles and sd of that mean when the split's images are resampled."""
    if len(a) != len(b) or not a:
        raise ValueError(f"expected the same number (>= 1) of networks per side, got {len(a)} and {len(b)}")
    diff = np.stack([x.astype(float) - y.astype(float) for x, y in zip(a, b, strict=True)])  # seeds x images
    per_seed = 100 * diff.mean(axis=1)
    per_image = diff.mean(axis=0)  # the seeds' mean difference on each image
    rng = np.random.default_rng(seed)
    draws = np.array([100 * per_image[rng.integers(0, len(per_image), len(per_image))].mean() for _ in range(boots)])
    return {"n": len(per_image), "per_seed": per_seed.tolist(), "mean": float(per_seed.mean()),
            "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else None,
            "boot_lo": float(np.quantile(draws, 0.025)), "boot_hi": float(np.quantile(draws, 0.975)),
            "boot_sd": float(draws.std(ddof=1))}


def _by_seed(runs: Path, network: str, cell: str, method: str) -> dict[int, Path]:
    """Seed -> directory of ``method``'s finished runs of (``network``, ``cell``); empty if none."""
    from restart import finished_runs, run_seed

    return {run_seed(d): d for *_, d in finished_runs(runs, network, cell, method, missing_ok=True)}


def write_markdown(out: Path, results: dict[str, Any]) -> None:
    lines = ["# Paired differences in final top-1 on the held-out splits", "",
             (f"Machine: {results['machine']}. Each row: the first method minus the second, paired by seed, in "
              "points; `images 95 %`: bootstrap interval of the mean over the split's images with the networks "
              "fixed (what the finite split alone leaves open); `seeds sd`: spread of the per-seed differences."), "",
             "| network | cell | method | versus | seeds | split | images | mean | per seed | seeds sd | images 95 % | images sd |",
             "|---|---|---|---|---:|---|---:|---:|---|---:|---|---:|"]
    for p in results["pairs"]:
        for name, s in [*p["splits"].items(), ("val+test", p["pooled"])]:
            sd = "-" if s["seed_sd"] is None else f"{s['seed_sd']:.2f}"
            lines.append(f"| {p['network']} | {p['cell']} | {p['method']} | {p['versus']} | {len(p['seeds'])} | {name} | "
                         f"{s['n']} | {s['mean']:+.2f} | {' '.join(f'{d:+.2f}' for d in s['per_seed'])} | {sd} | "
                         f"{s['boot_lo']:+.2f} to {s['boot_hi']:+.2f} | {s['boot_sd']:.2f} |")
    lines += ["", "Recomputed test top-1 against the runs' records (%):", ""]
    for p in results["pairs"]:
        for side in ("method", "versus"):
            checks = " ".join(f"s{s}: {100 * c[0]:.2f}/{100 * c[1]:.2f}" for s, c in zip(p["seeds"], p["checks"][side],
                                                                                       strict=True))
            lines.append(f"* {p['network']} {p['cell']} {p[side]}: {checks}")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    import argparse

    from ablation import _save
    from restart import add_run_arguments, finished_runs, open_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first pair's first two seeds, 200 resamples")
    add_run_arguments(parser, networks="resnet20", cells="lat50", methods="exponential-soup2-bnfinal-thin")
    parser.add_argument("--versus", default="uniform-soup2-bnfinal-thin", help="the method subtracted")
    parser.add_argument("--boots", type=int, default=2000, help="bootstrap resamples of the split's images (>= 100)")
    args = parser.parse_args()
    if args.boots < 100:
        raise SystemExit(f"--boots {args.boots}: expected at least 100 resamples for a 95 % interval")
    if args.versus in args.methods.split(","):
        raise SystemExit(f"--versus {args.versus}: it is also in --methods; pick another method to subtract")
    boots = 200 if args.quick else args.boots
    out = args.out or RESULTS / ("heldout_quick.json" if args.quick else "heldout.json")
    from netbudget.data import load_dataset
    from netbudget.pipeline.run import load
    from netbudget.zoo import cache_dir

    runs = args.runs or cache_dir() / "ablation" / "full"
    results = open_results(out, "pairs")
    data = None  # loaded for the first pair that ran
    todo = sorted({r[:3] for r in finished_runs(runs, args.networks, args.cells, args.methods)})
    for network, cell, method in todo[:1] if args.quick else todo:
        mine, theirs = (_by_seed(runs, network, cell, m) for m in (method, args.versus))
        seeds = sorted(mine.keys() & theirs.keys())[:2 if args.quick else None]
        if not seeds:
            print(f"[heldout] {network} {cell}: no seed ran both {method} and {args.versus}; skipped")
            continue
        print(f"[heldout] {network} {cell} {method} - {args.versus}, seeds {seeds}", flush=True)
        data = data or load_dataset("fashion-mnist", seed=0)
        hits: dict[str, dict[str, list[np.ndarray]]] = {"method": {"val": [], "test": []}, "versus": {"val": [], "test": []}}
        checks: dict[str, list[list[float]]] = {"method": [], "versus": []}
        for seed in seeds:
            for side, d in (("method", mine[seed]), ("versus", theirs[seed])):
                model = load(d / "final" / "model.pt")
                for name in ("val", "test"):
                    hits[side][name].append(correct(model, getattr(data, name)))
                recorded = json.loads((d / "final" / "summary.json").read_text())["accuracy"]["final"]
                checks[side].append([float(hits[side]["test"][-1].mean()), float(recorded)])
        pair = {"network": network, "cell": cell, "method": method, "versus": args.versus, "seeds": seeds,
                "splits": {name: paired_split(hits["method"][name], hits["versus"][name], boots) for name in ("val", "test")},
                # both held-out splits as one (15000 images): the estimate with the most images behind it
                "pooled": paired_split([np.concatenate(x) for x in zip(hits["method"]["val"], hits["method"]["test"], strict=True)],
                                       [np.concatenate(x) for x in zip(hits["versus"]["val"], hits["versus"]["test"], strict=True)],
                                       boots),
                "checks": checks}
        results["pairs"] = [p for p in results["pairs"]
                            if (p["network"], p["cell"], p["method"], p["versus"]) != (network, cell, method, args.versus)]
        results["pairs"].append(pair)
        _save(out, results)
    write_markdown(out, results)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
