"""Does a short (sampled) fine-tune gain from annealing its learning rate over the samples it sees?

With ``finetune_samples`` the pipeline stops each fine-tune after ``finetune_samples / 128``
optimiser steps per epoch while its cosine schedule spans full epochs (``FitConfig.max_steps``),
so the learning rate stays near ``finetune_lr`` to the end. The alternative,
``FitConfig.samples_per_epoch``, makes the epochs that short and anneals over them to zero.

Each network (zoo, trained on Fashion-MNIST, cached) is pruned once to the uniform half width
(channels, widths rounded to 8) and fine-tuned as the ablation's ``one-step`` method is at the
small fine-tune: 3 epochs of 5,000 samples (the step's budget) and 1 more (the final one), with
distillation from the dense network and ``lr = 0.01``; both schedules from the same pruned
weights, per seed. Reported: test and validation top-1 per arm and the paired difference.

Writes ``benchmarks/results/finetune_schedule.json`` and ``finetune_schedule.md``.

    python benchmarks/finetune_schedule.py           # resnet20 and vgg, 3 seeds (~3 min here)
    python benchmarks/finetune_schedule.py --quick   # resnet20, 1 seed, same JSON shape
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
SAMPLES = 5000  # the ablation's small fine-tune: samples per epoch
BATCH = 128
FITS = ((3, 1000), (1, 0))  # (epochs, seed offset): the step's fine-tune, then the final one
ARMS = ("truncated", "annealed")  # the pipeline's schedule (max_steps), the alternative (samples_per_epoch)


def _fit_config(arm: str, epochs: int, seed: int):
    """The pipeline's own fine-tune (``truncated``) or the same one annealed over its samples."""
    from netbudget.pipeline.run import finetune_fit
    from netbudget.train import FitConfig

    if arm == "truncated":
        return finetune_fit(epochs, lr=0.01, samples=SAMPLES, seed=seed)
    return FitConfig(epochs=epochs, batch_size=BATCH, lr=0.01, seed=seed, samples_per_epoch=SAMPLES)


def run(network: str, seeds: int) -> list[dict[str, Any]]:
    """One row per (seed, arm): test / validation top-1 (fractions) and seconds."""
    from netbudget.compress import compress as apply_config
    from netbudget.data import load_dataset
    from netbudget.pipeline.run import _inherit_compression
    from netbudget.space import build_space
    from netbudget.train import evaluate, fine_tune
    from netbudget.zoo import pretrained

    data = load_dataset("fashion-mnist", seed=0)
    model = pretrained(network, "fashion-mnist", progress=False)
    space = build_space(model, data.input_shape, operators=["channels"], max_channel_ratio=0.8, round_to=8)
    half = space.uniform(0.5 / 0.8)  # half of every layer's channels
    rows = []
    for seed in range(seeds):
        for arm in ARMS:
            start = time.perf_counter()
            candidate = apply_config(model, space, half)
            _inherit_compression(candidate)
            for epochs, offset in FITS:
                fine_tune(candidate, data.train, _fit_config(arm, epochs, seed + offset), teacher=model, progress=False)
            rows.append({"network": network, "seed": seed, "arm": arm, "test_top1": evaluate(candidate.module, data.test),
                         "val_top1": evaluate(candidate.module, data.val),
                         "seconds": time.perf_counter() - start})
            print(f"{network} seed {seed} {arm}: test {100 * rows[-1]['test_top1']:.2f} %", flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per network: mean top-1 per arm and annealed minus truncated, paired by seed (points)."""
    out = []
    for network in dict.fromkeys(r["network"] for r in rows):
        mine = {(r["seed"], r["arm"]): r for r in rows if r["network"] == network}
        seeds = sorted({s for s, _ in mine})
        entry: dict[str, Any] = {"network": network, "seeds": len(seeds)}
        for split in ("test_top1", "val_top1"):
            diffs = [100 * (mine[s, "annealed"][split] - mine[s, "truncated"][split]) for s in seeds]
            for arm in ARMS:
                entry[f"{arm}_{split}"] = float(np.mean([mine[s, arm][split] for s in seeds]))
            entry[f"annealed_minus_truncated_{split.removesuffix('_top1')}_pt"] = diffs
        out.append(entry)
    return out


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    """The Markdown table of ``result``'s summary (one row per network)."""
    lines = ["# Sampled fine-tune: truncated cosine (the pipeline's) against one annealed over the samples", "",
             f"Machine: {result['machine']}. {result['setup']}", "",
             ("| network | seeds | truncated test | annealed test | annealed - truncated, test (pt, per seed) | "
              "annealed - truncated, val (pt, per seed) |"), "|---|---:|---:|---:|---|---|"]
    for s in result["summary"]:
        test, val = s["annealed_minus_truncated_test_pt"], s["annealed_minus_truncated_val_pt"]
        lines.append(f"| {s['network']} | {s['seeds']} | {100 * s['truncated_test_top1']:.2f} % | "
                     f"{100 * s['annealed_test_top1']:.2f} % | {np.mean(test):+.2f} ({', '.join(f'{d:+.2f}' for d in test)}) | "
                     f"{np.mean(val):+.2f} ({', '.join(f'{d:+.2f}' for d in val)}) |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="resnet20, 1 seed")
    parser.add_argument("--networks", default="resnet20,vgg", help="zoo networks, comma-separated")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    networks = ["resnet20"] if args.quick else [n for n in args.networks.split(",") if n]
    seeds = 1 if args.quick else args.seeds
    if seeds < 1:
        parser.error(f"--seeds must be >= 1, but got {seeds}")
    rows = [row for network in networks for row in run(network, seeds)]
    from netbudget.metrics import describe_machine

    result = {"machine": f"{describe_machine()['cpu']}, {torch.get_num_threads()} torch threads",
              "setup": (f"Uniform half width, channels rounded to 8; fine-tune {FITS[0][0]} + {FITS[1][0]} epochs of "
                        f"{SAMPLES} samples, batch {BATCH}, lr 0.01, distilled."),
              "rows": rows, "summary": summarise(rows)}
    out = RESULTS / ("finetune_schedule_quick.json" if args.quick else "finetune_schedule.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(out.with_suffix(".md"), result)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
