"""Unstructured magnitude pruning of one layer's weights."""

from __future__ import annotations

import torch

from netbudget.exceptions import InvalidArgumentError

__all__ = ["magnitude_mask"]


def magnitude_mask(weight: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask keeping all but the ``fraction`` of weights with the smallest magnitude.

    Weights that are already zero count towards the fraction, so a fraction at or below
    the current sparsity changes nothing (the mask is simply ``weight != 0``). Ties at the
    threshold are broken by position, so exactly ``floor(fraction * numel)`` weights end up
    zero whenever that is at least the current number of zeros.

    Args:
        weight: the layer's weight tensor.
        fraction: target fraction of zero weights, in [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise InvalidArgumentError(f"`fraction` must be in [0, 1), but got {fraction=}.")
    flat = weight.detach().abs().flatten()
    target = int(fraction * flat.numel())
    mask = flat != 0
    zeros = int((~mask).sum())
    if target <= zeros:
        return mask.reshape(weight.shape)
    order = torch.argsort(flat, stable=True)  # zeros first, then increasing magnitude
    mask = torch.ones_like(mask)
    mask[order[:target]] = False
    return mask.reshape(weight.shape)
