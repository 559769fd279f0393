"""Compress a trained network by hand: remove channels, fine-tune, and measure what changed.

    .venv/bin/python examples/prune_and_measure.py
"""

from __future__ import annotations

from netbudget.compress import compress
from netbudget.data import load_dataset
from netbudget.export.packed import packed_size
from netbudget.metrics import LatencyConfig, count_macs, measure_latency
from netbudget.space import build_space
from netbudget.train import FitConfig, evaluate, fine_tune
from netbudget.zoo import pretrained


def main() -> None:
    data = load_dataset("digits")
    model = pretrained("vgg", "digits", progress=False)  # trained once, then cached
    shape = data.input_shape
    space = build_space(model, shape, operators=("channels", "prune", "bits"))
    config = {}
    for dim in space.dimensions:  # half the channels, 70 % zeros, 4-bit codebooks everywhere
        config[dim.name] = {"channels": 0.5, "prune": 0.7, "bits": 4}[dim.operator]
    result = compress(model, space, config)
    print(f"dense      top-1 {100 * evaluate(model, data.test):.1f} %")
    print(f"compressed top-1 {100 * evaluate(result.module, data.test):.1f} % (before fine-tuning)")
    fine_tune(result, data, FitConfig(epochs=3, lr=0.01), teacher=model, progress=False)
    print(f"compressed top-1 {100 * evaluate(result.module, data.test):.1f} % (after 3 epochs)")
    ratio = measure_latency(result.module, shape, LatencyConfig(batch_size=32), reference=model).ratio
    print(f"MACs  {count_macs(result.module, (1, *shape)) / count_macs(model, (1, *shape)):.2f}x of dense")
    print(f"latency {ratio:.2f}x of dense (onnxruntime, batch 32)")
    print(f"packed size {packed_size(result.module.state_dict()):,} B vs {packed_size(model.state_dict()):,} B dense")


if __name__ == "__main__":
    main()
