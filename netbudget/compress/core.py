"""``compress(model, space, config)``: apply every operator to a copy of the network."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netbudget.compress.channels import prune_channels_
from netbudget.compress.prune import magnitude_mask
from netbudget.compress.quantize import QuantizeConfig, codebook, snap
from netbudget.exceptions import InvalidArgumentError, UnknownNameError
from netbudget.space import SearchSpace

__all__ = ["OPERATOR_HANDLERS", "CompressedModel", "compress", "register_operator"]


@dataclass
class CompressedModel:
    """A compressed copy of a network and what keeps it compressed during fine-tuning.

    Attributes:
        module: the compressed network (a new module; the input network is untouched).
        config: the configuration that produced it (dimension name -> value).
        masks: ``{weight name: bool tensor}``, True where a weight may be non-zero.
        codebooks: ``{weight name: sorted levels}`` for quantised weights.
        channels: ``{channel group root: (before, after)}`` for structured pruning.
    """

    module: nn.Module
    config: dict[str, float]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    codebooks: dict[str, torch.Tensor] = field(default_factory=dict)
    channels: dict[str, tuple[int, int]] = field(default_factory=dict)

    def enforce_(self, module: nn.Module | None = None) -> None:
        """Re-apply masks and codebooks in place (zeros to zero, weights onto their levels)."""
        params = dict((module or self.module).named_parameters())
        with torch.no_grad():
            for name, mask in self.masks.items():
                params[name].masked_fill_(~mask, 0.0)  # +0.0: multiplying would leave -0.0
            for name, levels in self.codebooks.items():
                params[name].copy_(snap(params[name], levels))

    def sparsity(self, layer: str) -> float:
        """Fraction of zero weights of ``layer`` (its ``.weight``)."""
        weight = dict(self.module.named_modules())[layer].weight
        return float((weight == 0).float().mean())

    def bit_width(self, layer: str) -> int | None:
        """Bits needed for the distinct non-zero weights of ``layer`` (None if not quantised)."""
        name = f"{layer}.weight"
        if name not in self.codebooks:
            return None
        weight = dict(self.module.named_parameters())[name]
        distinct = int(weight[weight != 0].unique().numel())
        return max(1, (distinct - 1).bit_length())


Handler = Callable[[CompressedModel, SearchSpace, Mapping[str, float], Any], None]
OPERATOR_HANDLERS: dict[str, Handler] = {}


def register_operator(name: str, handler: Handler) -> None:
    """Register a handler ``handler(compressed, space, values, options)`` for an operator name."""
    if name in OPERATOR_HANDLERS:
        raise InvalidArgumentError(f"An operator named {name!r} is already registered.")
    OPERATOR_HANDLERS[name] = handler


def _targets(space: SearchSpace, values: Mapping[str, float], operator: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for dim in space.dimensions:
        if dim.operator == operator:
            for target in dim.targets:
                out[target] = values[dim.name]
    return out


def _channels(compressed: CompressedModel, space: SearchSpace, values: Mapping[str, float], options: Any) -> None:
    ratios = _targets(space, values, "channels")
    if ratios:
        output = [n for n, m in compressed.module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
        compressed.channels = prune_channels_(
            compressed.module, space.input_shape, ratios, round_to=space.round_to, ignored=[output]
        )


def _prune(compressed: CompressedModel, space: SearchSpace, values: Mapping[str, float], options: Any) -> None:
    modules = dict(compressed.module.named_modules())
    with torch.no_grad():
        for layer, fraction in _targets(space, values, "prune").items():
            weight = modules[layer].weight
            mask = magnitude_mask(weight, fraction)
            weight.masked_fill_(~mask, 0.0)  # +0.0, not the -0.0 that weight * 0 gives
            compressed.masks[f"{layer}.weight"] = mask


def _bits(compressed: CompressedModel, space: SearchSpace, values: Mapping[str, float], options: Any) -> None:
    modules = dict(compressed.module.named_modules())
    config = options if isinstance(options, QuantizeConfig) else QuantizeConfig()
    with torch.no_grad():
        for layer, bits in _targets(space, values, "bits").items():
            weight = modules[layer].weight
            levels = codebook(weight, int(bits), config)
            weight.copy_(snap(weight, levels))
            # only the levels in use: fine-tuning onto a level k-means left empty would add a
            # distinct value, and the packed size (measured before fine-tuning) could grow
            used = weight[weight != 0].unique()
            compressed.codebooks[f"{layer}.weight"] = used if used.numel() else levels
            # zeros must stay zeros while fine-tuning moves the float shadow weights
            compressed.masks.setdefault(f"{layer}.weight", weight != 0)


# channels first (it changes shapes), then pruning, then quantisation of the survivors
for _name, _handler in (("channels", _channels), ("prune", _prune), ("bits", _bits)):
    register_operator(_name, _handler)


def compress(
    model: nn.Module,
    space: SearchSpace,
    config: Mapping[str, float],
    *,
    quantize: QuantizeConfig | None = None,
) -> CompressedModel:
    """Apply a configuration of ``space`` to a copy of ``model``.

    The input network is never changed; the same configuration gives the same result.
    Operators run in registry order: ``channels`` (structured, Torch-Pruning), ``prune``
    (unstructured magnitude), ``bits`` (codebook quantisation of the surviving weights, in
    the same pass, as in CLIP-Q).

    Args:
        model: the trained network.
        space: the search space built for it (``netbudget.space.build_space``).
        config: ``{dimension name: value}``; missing dimensions are left uncompressed.
        quantize: codebook settings for ``bits`` dimensions.

    Raises:
        InvalidArgumentError: a dimension is unknown or a value out of its bounds.
    """
    values = space.validate(config)
    operators = {d.operator for d in space.dimensions}
    unknown = operators - set(OPERATOR_HANDLERS)
    if unknown:
        raise UnknownNameError(f"No handler registered for operators {sorted(unknown)}.")
    module = copy.deepcopy(model).eval()
    compressed = CompressedModel(module=module, config=dict(values))
    for name, handler in OPERATOR_HANDLERS.items():
        if name in operators:
            handler(compressed, space, values, quantize)
    return compressed
