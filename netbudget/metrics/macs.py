"""Multiply-accumulate and parameter counts from a network's real shapes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["count_macs", "count_params", "layer_macs"]


def layer_macs(model: nn.Module, input_shape: Sequence[int], *, sparse: bool = False) -> dict[str, int]:
    """Return the MACs of every Conv / Linear layer for one forward pass.

    Args:
        model: the network (not modified; run once in eval mode without gradients).
        input_shape: full input shape including the batch dimension, e.g. ``(1, 1, 28, 28)``.
        sparse: count only multiplications by non-zero weights (what a sparse kernel would do).

    Returns:
        ``{layer name: MACs}`` for the given batch size.
    """
    counts: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            weight = module.weight
            if isinstance(module, nn.Conv2d):
                # each output element of each output channel uses one filter of (cin/groups) x kh x kw
                per_channel = (weight != 0).flatten(1).sum(1) if sparse else torch.full(
                    (weight.shape[0],), weight[0].numel()
                )
                spatial = output.shape[0] * output.shape[2] * output.shape[3]
                counts[name] = counts.get(name, 0) + int(per_channel.sum()) * spatial
            else:
                per_sample = int((weight != 0).sum()) if sparse else weight.numel()
                rows = output.numel() // output.shape[-1]
                counts[name] = counts.get(name, 0) + per_sample * rows

        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(*input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return counts


def count_macs(model: nn.Module, input_shape: Sequence[int], *, sparse: bool = False) -> int:
    """Total multiply-accumulates of one forward pass at ``input_shape`` (batch included)."""
    return sum(layer_macs(model, input_shape, sparse=sparse).values())


def count_params(model: nn.Module, *, sparse: bool = False) -> int:
    """Number of parameters; with ``sparse``, only the non-zero ones."""
    if sparse:
        return sum(int((p != 0).sum()) for p in model.parameters())
    return sum(p.numel() for p in model.parameters())
