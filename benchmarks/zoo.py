"""Train every zoo network on each bundled dataset and record accuracy, size and cost.

Writes ``benchmarks/results/zoo.json`` and ``zoo.md``. Trained checkpoints go to the
netbudget cache (``~/.cache/netbudget``), so later runs and benchmarks reuse them.

    python benchmarks/zoo.py            # every network x digits, mnist5k, fashion-mnist
    python benchmarks/zoo.py --quick    # vgg on digits and mnist5k only, same JSON shape
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from netbudget.data import load_dataset
from netbudget.metrics.macs import count_macs
from netbudget.train import FitConfig, default_epochs, evaluate, fit
from netbudget.zoo import MODELS, build_model, checkpoint_path, save_checkpoint

RESULTS = Path(__file__).parent / "results"
TARGETS = {"digits": 0.96, "mnist5k": 0.96, "fashion-mnist": 0.90}
STRICT_TARGETS = {("vgg", "fashion-mnist"): 0.91, ("resnet20", "fashion-mnist"): 0.91}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="vgg on digits and mnist5k only")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--datasets", nargs="*", default=list(TARGETS))
    args = parser.parse_args()
    models = ["vgg"] if args.quick else args.models
    datasets = ["digits", "mnist5k"] if args.quick else args.datasets
    rows = []
    for dataset in datasets:
        data = load_dataset(dataset)
        epochs = default_epochs(dataset)
        for name in models:
            model = build_model(name, input_size=data.input_shape[-1], num_classes=data.num_classes)
            start = time.perf_counter()
            fit(model, data, FitConfig(epochs=epochs), progress=False)
            seconds = time.perf_counter() - start
            top1 = evaluate(model, data.test)
            save_checkpoint(model, checkpoint_path(name, dataset, epochs=epochs))
            target = STRICT_TARGETS.get((name, dataset), TARGETS[dataset])
            row = {
                "architecture": name,
                "dataset": dataset,
                "epochs": epochs,
                "params": sum(p.numel() for p in model.parameters()),
                "macs": count_macs(model, (1, *data.input_shape)),
                "test_top1": round(top1, 4),
                "train_seconds": round(seconds, 1),
                "target_top1": target,
                "meets_target": top1 >= target and seconds <= 600,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "zoo.json"
    if previous.is_file() and not args.quick:
        # a partial re-run (--models / --datasets) replaces only its own rows
        fresh = {(r["architecture"], r["dataset"]) for r in rows}
        kept = [r for r in json.loads(previous.read_text())["rows"] if (r["architecture"], r["dataset"]) not in fresh]
        rows = kept + rows
        order = {d: i for i, d in enumerate(TARGETS)}
        rows.sort(key=lambda r: (order.get(r["dataset"], 99), list(MODELS).index(r["architecture"])))
    (RESULTS / "zoo.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Zoo networks",
        "",
        f"Machine: {machine}. Default width 1.0, SGD + cosine, batch 128, seed 0.",
        "",
        "| architecture | dataset | epochs | params | MACs | test top-1 | train s | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['architecture']} | {r['dataset']} | {r['epochs']} | {r['params']:,} | {r['macs']:,} | "
            f"{100 * r['test_top1']:.2f} % | {r['train_seconds']:.0f} | {100 * r['target_top1']:.0f} % | "
            f"{'yes' if r['meets_target'] else 'NO'} |"
        )
    (RESULTS / "zoo.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
