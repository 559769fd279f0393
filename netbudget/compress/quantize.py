"""Weight quantisation: a per-layer codebook for the non-zero weights (zeros stay zero)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from netbudget.exceptions import InvalidArgumentError

__all__ = ["QuantizeConfig", "codebook", "snap"]

METHODS = ("uniform", "kmeans")


@dataclass(frozen=True, kw_only=True)
class QuantizeConfig:
    """How weights are quantised.

    Attributes:
        method: ``uniform`` (evenly spaced levels between min and max) or ``kmeans``
            (1-D k-means, initialised uniformly, as in CLIP-Q-style codebooks).
        kmeans_iterations: Lloyd iterations of ``kmeans``.
    """

    method: str = "uniform"
    kmeans_iterations: int = 15

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidArgumentError(f"`method` must be one of {METHODS}, but got method={self.method!r}.")
        if self.kmeans_iterations < 0:
            raise InvalidArgumentError(f"`kmeans_iterations` must be >= 0, but got {self.kmeans_iterations}.")


def codebook(values: torch.Tensor, bits: int, config: QuantizeConfig | None = None) -> torch.Tensor:
    """At most ``2**bits`` sorted, non-zero levels for the non-zero ``values``.

    No level is exactly zero, so snapping never creates new zeros: sparsity is the pruning
    operator's business alone.
    """
    config = config or QuantizeConfig()
    if not 1 <= bits <= 16:
        raise InvalidArgumentError(f"`bits` must be in [1, 16], but got {bits=}.")
    values = values.detach().flatten()
    values = values[values != 0]
    if values.numel() == 0:
        return torch.ones(1)
    k = min(2**bits, int(values.unique().numel()))
    levels = torch.linspace(float(values.min()), float(values.max()), k)
    if config.method == "kmeans" and k > 1:
        for _ in range(config.kmeans_iterations):
            assign = (values[:, None] - levels[None, :]).abs().argmin(1)
            sums = torch.zeros(k).index_add_(0, assign, values)
            counts = torch.zeros(k).index_add_(0, assign, torch.ones_like(values))
            levels = torch.where(counts > 0, sums / counts.clamp_min(1), levels)
    # nudge a level that landed exactly on zero to the smallest representable magnitude
    tiny = torch.finfo(levels.dtype).tiny
    levels = torch.where(levels == 0, torch.full_like(levels, tiny), levels)
    return torch.sort(levels).values


def snap(weight: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """``weight`` with every non-zero entry replaced by its nearest level (zeros kept, as +0.0)."""
    flat = weight.flatten()
    index = torch.bucketize(flat, levels).clamp(1, len(levels) - 1) if len(levels) > 1 else torch.zeros_like(flat, dtype=torch.long)
    if len(levels) > 1:
        lower, upper = levels[index - 1], levels[index]
        nearest = torch.where((flat - lower).abs() <= (upper - flat).abs(), lower, upper)
    else:
        nearest = levels.expand_as(flat)
    return torch.where(flat == 0, torch.zeros_like(flat), nearest).reshape(weight.shape)  # -0.0 -> +0.0
