"""What each compression operator buys: latency and MAC ratios, packed size.

For each zoo network (1x28x28 inputs), backends onnxruntime and torch, batch 1 and 32:
structured channel pruning at ratios 0.3 / 0.5 / 0.7 (kept channels rounded to multiples
of 8, and of 1 at 0.5 for comparison), unstructured pruning at sparsity 0.5 / 0.9 (dense
runtimes are not expected to speed up: reported as measured), and quantisation to 8 / 4 / 2
bits (with and without 50 % sparsity) for the packed size. Latency ratios come from the
drift-guarded harness: the compressed and the dense network are timed interleaved.

Writes ``benchmarks/results/operators.json`` and ``operators.md``.

    python benchmarks/operators.py            # every network, both backends, batch 1 and 32
    python benchmarks/operators.py --quick    # vgg, batch 32, same JSON shape
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from netbudget.compress import compress
from netbudget.export.packed import packed_size
from netbudget.metrics import LatencyConfig, count_macs, measure_latency
from netbudget.space import build_space
from netbudget.zoo import MODELS, build_model

RESULTS = Path(__file__).parent / "results"
SHAPE = (1, 28, 28)


def variants(model: torch.nn.Module) -> list[tuple[str, float, torch.nn.Module, bool]]:
    """(operator, amount, compressed module, MACs counted sparse) for every variant measured."""
    out = [("dense", 0.0, model, False)]
    for round_to, label in ((8, "channels"), (1, "channels-round1")):
        space = build_space(model, SHAPE, operators=("channels",), round_to=round_to)
        for ratio in ((0.3, 0.5, 0.7) if round_to == 8 else (0.5,)):
            out.append((label, ratio, compress(model, space, {n: ratio for n in space.names}).module, False))
    prune = build_space(model, SHAPE, operators=("prune",))
    for sparsity in (0.5, 0.9):
        out.append(("prune", sparsity, compress(model, prune, {n: sparsity for n in prune.names}).module, True))
    both = build_space(model, SHAPE, operators=("prune", "bits"))
    for bits in (8, 4, 2):
        dense_q = {n: (0.0 if n.startswith("prune") else bits) for n in both.names}
        out.append(("bits", float(bits), compress(model, both, dense_q).module, False))
        sparse_q = {n: (0.5 if n.startswith("prune") else bits) for n in both.names}
        out.append(("prune0.5+bits", float(bits), compress(model, both, sparse_q).module, True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    models = ["vgg"] if args.quick else list(MODELS)
    batches = [32] if args.quick else [1, 32]
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = build_model(name).eval()
        dense_macs = count_macs(model, (1, *SHAPE))
        built = variants(model)
        for backend in ("onnxruntime", "torch"):
            for batch in batches:
                config = LatencyConfig(backend=backend, batch_size=batch, repeats=30 if batch > 1 else 50)
                for operator, amount, module, sparse in built:
                    if operator == "dense":
                        ratio = 1.0
                    else:
                        ratio = measure_latency(module, SHAPE, config, reference=model).ratio
                    mac_ratio = count_macs(module, (1, *SHAPE), sparse=sparse) / dense_macs
                    row = {
                        "model": name,
                        "backend": backend,
                        "batch": batch,
                        "operator": operator,
                        "amount": amount,
                        "mac_ratio": round(mac_ratio, 4),
                        "latency_ratio": round(float(ratio), 4),
                        "size_bytes": packed_size(module.state_dict()),
                    }
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    machine = f"{platform.machine()}, torch {torch.__version__}, 1 intra-op thread"
    payload = {"machine": machine, "quick": args.quick, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "operators_quick" if args.quick else "operators"
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(render(payload))


def render(payload: dict) -> str:
    lines = [
        "# Compression operators: latency, MACs, packed size",
        "",
        f"Machine: {payload['machine']}. Latency ratio = compressed / dense, timed interleaved in the same "
        "run (drift guard). MAC ratio counts non-zero weights only for pruned variants (what a sparse kernel "
        "could reach). Goal: latency ratio <= 1.25 x MAC ratio for channel pruning of vgg and resnet20 "
        "on onnxruntime.",
        "",
        "| model | backend | batch | operator | amount | MAC ratio | latency ratio | lat / MAC | packed size |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in payload["rows"]:
        goal = ""
        if r["operator"].startswith("channels") and r["model"] in ("vgg", "resnet20") and r["backend"] == "onnxruntime":
            goal = " ✓" if r["latency_ratio"] <= 1.25 * r["mac_ratio"] else " ✗"
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['batch']} | {r['operator']} | {r['amount']:g} | "
            f"{r['mac_ratio']:.3f} | {r['latency_ratio']:.3f} | {r['latency_ratio'] / r['mac_ratio']:.2f}{goal} | "
            f"{r['size_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
