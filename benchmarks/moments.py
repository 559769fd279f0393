"""How far one moment's latency re-measurements can be trusted on this machine.

A thinner network is timed interleaved with the dense one (the pipeline's ratio protocol:
onnxruntime, 1 thread, batch 32) in bursts ("moments") of back-to-back ratio measurements,
``--gap`` seconds apart. Reported: the spread within a moment and between moments, and how
often a later moment's mean lies above a 95 % upper confidence bound of the mean:
- *one moment*: the bound over ``--per-moment`` back-to-back re-measurements (how the
  re-check and verification bounded before ``moments`` existed);
- *five moments*: the bound over the means of 5 consecutive moments, 2 re-measurements each
  (the pipeline's default: 10 re-measurements over 5 moments), against the moments after them.
A valid 95 % bound is exceeded by about 5 % of later means when nothing drifts.

Writes ``benchmarks/results/moments.json`` and ``moments.md``.

    python benchmarks/moments.py            # 24 moments 10 s apart, 10 re-measurements each (~8 min)
    python benchmarks/moments.py --quick    # 8 moments 2 s apart, 5 re-measurements each, same JSON shape
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import t as student

from netbudget.metrics import LatencyConfig, describe_machine, measure_latency
from netbudget.zoo import build_model

RESULTS = Path(__file__).parent / "results"
CONFIG = LatencyConfig(backend="onnxruntime", threads=1, batch_size=32)
WINDOW = 5  # moments per pipeline bound
PER_WINDOW_MOMENT = 2  # re-measurements per moment in the pipeline's default (10 over 5)


def upper(values: list[float], level: float = 0.95) -> float:
    """One-sided Student-t upper confidence bound of the mean."""
    n = len(values)
    return float(np.mean(values) + student.ppf(level, n - 1) * np.std(values, ddof=1) / np.sqrt(n))


def exceed_rates(bursts: list[list[float]]) -> dict[str, float]:
    """Fractions of later moments' means above each kind of bound (see the module docstring)."""
    means = [float(np.mean(b)) for b in bursts]
    one = [means[j] > upper(bursts[i]) for i in range(len(bursts)) for j in range(i + 1, len(bursts))]
    five = []
    for i in range(len(bursts) - WINDOW):
        bound = upper([float(np.mean(b[:PER_WINDOW_MOMENT])) for b in bursts[i:i + WINDOW]])
        five += [m > bound for m in means[i + WINDOW:]]
    return {"one_moment": float(np.mean(one)) if one else float("nan"),
            "five_moments": float(np.mean(five)) if five else float("nan"),
            "one_moment_pairs": len(one), "five_moments_pairs": len(five)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--moments", type=int, default=None, help="bursts of re-measurements [24; quick 8]")
    parser.add_argument("--per-moment", type=int, default=None, help="re-measurements per burst [10; quick 5]")
    parser.add_argument("--gap", type=float, default=None, help="seconds between bursts [10; quick 2]")
    parser.add_argument("--width", type=float, default=0.6, help="width of the thinner vgg (fraction)")
    args = parser.parse_args()
    moments = args.moments or (8 if args.quick else 24)
    per_moment = args.per_moment or (5 if args.quick else 10)
    gap = args.gap if args.gap is not None else (2.0 if args.quick else 10.0)
    if moments <= WINDOW or per_moment < PER_WINDOW_MOMENT:
        parser.error(f"--moments must exceed {WINDOW} and --per-moment be >= {PER_WINDOW_MOMENT}, "
                     f"but got {moments} and {per_moment}")
    torch.manual_seed(0)
    dense = build_model("vgg").eval()
    thin = build_model("vgg", width=args.width).eval()
    bursts, starts = [], []
    start = time.perf_counter()
    for k in range(moments):
        if k:
            time.sleep(gap)
        starts.append(time.perf_counter() - start)
        burst = [measure_latency(thin, (1, 28, 28), CONFIG, reference=dense).ratio for _ in range(per_moment)]
        bursts.append(burst)
        print(f"moment {k + 1}/{moments} at {starts[-1]:.0f} s: median ratio {np.median(burst):.3f} "
              f"(upper bound {upper(burst):.3f})", flush=True)
    means = [float(np.mean(b)) for b in bursts]
    summary = {
        "ratio_mean": float(np.mean(means)),
        "within_cv": float(np.mean([np.std(b, ddof=1) / np.mean(b) for b in bursts])),
        "between_cv": float(np.std(means, ddof=1) / np.mean(means)),
        "range": [float(min(means)), float(max(means))],
        "exceeded": exceed_rates(bursts),
    }
    out = RESULTS / ("moments_quick.json" if args.quick else "moments.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": f"{describe_machine()['cpu']}, {torch.get_num_threads()} torch threads",
        "setup": {"backend": CONFIG.backend, "threads": CONFIG.threads, "batch_size": CONFIG.batch_size,
                  "width": args.width, "moments": moments, "per_moment": per_moment, "gap_seconds": gap},
        "moments": [{"start_seconds": s, "ratios": b, "mean": m, "upper_one_moment": upper(b)}
                    for s, b, m in zip(starts, bursts, means, strict=True)],
        "summary": summary,
    }
    out.write_text(json.dumps(result, indent=1))
    ex = summary["exceeded"]
    lines = [
        "# Latency ratios across moments", "",
        f"Machine: {result['machine']}. vgg at width {args.width} timed interleaved with the dense vgg "
        f"(onnxruntime, 1 thread, batch 32): {moments} moments {gap:g} s apart, {per_moment} ratio "
        f"re-measurements each.", "",
        "| mean ratio | range of moment means | CV within a moment | CV between moments |",
        "|---:|---:|---:|---:|",
        f"| {summary['ratio_mean']:.3f}x | {summary['range'][0]:.3f}-{summary['range'][1]:.3f}x | "
        f"{100 * summary['within_cv']:.1f} % | {100 * summary['between_cv']:.1f} % |", "",
        "| 95 % upper bound of the mean taken over | later moments' means above it (nominal 5 %) | pairs |",
        "|---|---:|---:|",
        f"| one moment ({per_moment} back-to-back re-measurements) | {100 * ex['one_moment']:.0f} % | "
        f"{ex['one_moment_pairs']} |",
        f"| {WINDOW} moments ({PER_WINDOW_MOMENT} re-measurements each; the pipeline's default) | "
        f"{100 * ex['five_moments']:.0f} % | {ex['five_moments_pairs']} |", "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
