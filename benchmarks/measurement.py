"""Repeatability and cost of latency measurement for every zoo network and backend.

For each network and backend, 10 independent measurements (fresh export / session, default
harness: 10 warm-up runs, at least 50 timed runs and 0.3 s of timing, batch 1, 1 thread) give the coefficient of
variation of the reported latency (goal <= 3 %) and the seconds one measurement takes.
Also reported: the drift-guarded ratio to a reference network timed alongside, whose
spread shows how much the ratio protects against a drifting machine.

Writes ``benchmarks/results/measurement.json`` and ``measurement.md``.

    python benchmarks/measurement.py            # 4 networks x 2 backends x 10 measurements
    python benchmarks/measurement.py --quick    # vgg only, 5 measurements, same JSON shape
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from netbudget.metrics import LatencyConfig, measure_latency
from netbudget.zoo import MODELS, build_model

RESULTS = Path(__file__).parent / "results"


def cv(values: list[float]) -> float:
    return float(np.std(values, ddof=1) / np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--measurements", type=int, default=None)
    args = parser.parse_args()
    models = ["vgg"] if args.quick else list(MODELS)
    n = args.measurements or (5 if args.quick else 10)
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = build_model(name).eval()
        reference = build_model("vgg", width=0.5).eval()
        for backend in ("onnxruntime", "torch"):
            config = LatencyConfig(backend=backend)
            means, medians, ratios, seconds = [], [], [], []
            for _ in range(n):
                start = time.perf_counter()
                m = measure_latency(model, (1, 28, 28), config)
                seconds.append(time.perf_counter() - start)
                means.append(m.value)
                medians.append(m.stat("median"))
                guarded = measure_latency(model, (1, 28, 28), config, reference=reference)
                ratios.append(guarded.ratio)
            row = {
                "model": name,
                "backend": backend,
                "batch": 1,
                "threads": 1,
                "measurements": n,
                "latency_ms_mean": 1e3 * statistics.fmean(means),
                "cv_mean": cv(means),
                "cv_median": cv(medians),
                "cv_ratio_to_reference": cv(ratios),
                "seconds_per_measurement": statistics.fmean(seconds),
                "meets_goal": cv(means) <= 0.03,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads available, torch {torch.__version__}"
    payload = {"machine": machine, "quick": args.quick, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "measurement_quick" if args.quick else "measurement"
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Latency measurement repeatability",
        "",
        f"Machine: {machine}. Harness defaults: 10 warm-up runs, then at least 50 timed runs and 0.3 s of timing; batch 1, 1 thread. "
        f"CV over {n} independent measurements (goal <= 3 % for the reported mean).",
        "",
        "| model | backend | latency ms | CV mean | CV median | CV ratio to reference | s / measurement | goal |",
        "|---|---|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['latency_ms_mean']:.3f} | {100 * r['cv_mean']:.1f} % | "
            f"{100 * r['cv_median']:.1f} % | {100 * r['cv_ratio_to_reference']:.1f} % | "
            f"{r['seconds_per_measurement']:.2f} | {'yes' if r['meets_goal'] else 'NO'} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
