"""Size, MACs and params of a configuration without compressing the network.

The search proposes thousands of candidate configurations per trial; compressing each to
count its bytes would take minutes. ``CostModel`` probes the network once (one
Torch-Pruning pass per channel group, to learn which tensor dimensions each group
controls) and then predicts every tensor's shape, zeros and distinct values for any
configuration in microseconds. Predicted shapes and MACs are exact; the packed size is
exact up to the number of distinct values the quantiser really uses (the real size of every
evaluated candidate is measured, never estimated).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from netbudget.compress.channels import kept_channels, prune_channels_
from netbudget.metrics.macs import layer_macs
from netbudget.space import SearchSpace

__all__ = ["COMPUTABLE_KEYS", "CostModel"]

COMPUTABLE_KEYS = ("size.packed", "macs.dense", "macs.sparse", "params.dense", "params.sparse")


@dataclass
class _Tensor:
    name: str
    shape: list[int]
    itemsize: int
    is_param: bool
    packable: bool  # float32 with >= 2 dims: sparse / code encodings apply
    zeros: float  # fraction of exact zeros in the base network
    distinct: int  # distinct non-zero values in the base network
    macs_per_weight: float  # MACs per weight element (0 for non-weights)
    layer: str | None  # Conv / Linear layer whose weight this is
    # per dimension: [(group root, elements removed per channel removed)]
    controls: list[list[tuple[str, int]]]


class CostModel:
    """Predict packed size, MACs and params of ``space`` configurations over ``model``.

    Args:
        model: the base network the configurations apply to (not modified).
        space: its search space.
    """

    def __init__(self, model: nn.Module, space: SearchSpace) -> None:
        self.space = space
        base = copy.deepcopy(model).eval()
        layers = {n: m for n, m in base.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        macs = layer_macs(base, (1, *space.input_shape))
        params = {name for name, _ in base.named_parameters()}
        state = base.state_dict()
        self._tensors: list[_Tensor] = []
        for name, tensor in state.items():
            layer = name[: -len(".weight")] if name.endswith(".weight") and name[: -len(".weight")] in layers else None
            packable = tensor.dtype == torch.float32 and tensor.dim() >= 2 and tensor.numel() > 0
            nonzero = tensor[tensor != 0] if packable else tensor.flatten()
            self._tensors.append(
                _Tensor(
                    name=name,
                    shape=list(tensor.shape),
                    itemsize=tensor.element_size(),
                    is_param=name in params,
                    packable=packable,
                    zeros=float((tensor == 0).float().mean()) if tensor.numel() else 0.0,
                    distinct=int(nonzero.unique().numel()) if packable else 0,
                    macs_per_weight=macs.get(layer, 0) / tensor.numel() if layer else 0.0,
                    layer=layer,
                    controls=[[] for _ in tensor.shape],
                )
            )
        self._probe(base, layers)
        self._last: tuple[tuple, dict[str, float]] | None = None
        self._targets: dict[str, list[tuple[str, str]]] = {}
        for dim in space.dimensions:
            for target in dim.targets:
                self._targets.setdefault(target, []).append((dim.operator, dim.name))

    def _probe(self, base: nn.Module, layers: Mapping[str, nn.Module]) -> None:
        """Prune each channel group alone to learn which tensor dimensions it controls."""
        counts = self.space.channel_counts or {}
        output = list(layers)[-1]
        by_name = {t.name: t for t in self._tensors}
        for root, channels in counts.items():
            if channels < 2:
                continue
            probe = copy.deepcopy(base)
            removed = channels // 2
            prune_channels_(probe, self.space.input_shape, {root: removed / channels}, round_to=1, ignored=[output])
            for name, tensor in probe.state_dict().items():
                entry = by_name[name]
                for axis, (old, new) in enumerate(zip(entry.shape, tensor.shape, strict=True)):
                    if old != new:
                        per_channel, rest = divmod(old - new, removed)
                        entry.controls[axis].append((root, per_channel if not rest else (old - new) / removed))

    def estimate(self, config: Mapping[str, float]) -> dict[str, float]:
        """Predicted ``size.packed`` (bytes), ``macs.dense``, ``macs.sparse``, ``params.dense``
        and ``params.sparse`` of ``config`` (dimension name -> value; missing = uncompressed).

        The last answer is kept: with several computable bounds the sampler asks once per bound."""
        key = tuple(sorted(config.items()))
        if self._last is not None and self._last[0] == key:
            return dict(self._last[1])
        result = self._estimate(config)
        self._last = (key, result)
        return dict(result)

    def _estimate(self, config: Mapping[str, float]) -> dict[str, float]:
        counts = self.space.channel_counts or {}
        removed: dict[str, int] = {}
        prune: dict[str, float] = {}
        bits: dict[str, int] = {}
        for dim in self.space.dimensions:
            value = config.get(dim.name, dim.least_compressed)
            for target in dim.targets:
                if dim.operator == "channels":
                    channels = counts[target]
                    removed[target] = channels - kept_channels(channels, float(value), self.space.round_to)
                elif dim.operator == "prune":
                    prune[target] = float(value)
                else:
                    bits[target] = round(value)
        size = 9  # magic, version, tensor count
        macs = macs_sparse = params = params_sparse = 0.0
        for t in self._tensors:
            shape = [
                size_ - sum(per * removed.get(root, 0) for root, per in controls)
                for size_, controls in zip(t.shape, t.controls, strict=True)
            ]
            numel = math.prod(shape)
            size += 2 + len(t.name.encode()) + 2 + 4 * len(shape) + 1
            if not t.packable:
                size += numel * t.itemsize
                nonzero = numel - round(t.zeros * numel)
            else:
                zeros = t.zeros
                if t.layer in prune:
                    zeros = max(zeros, math.floor(prune[t.layer] * numel) / max(numel, 1))
                nonzero = numel - round(zeros * numel)
                distinct = min(t.distinct, nonzero)
                if t.layer in bits:
                    # k-means leaves a few of its 2^b levels unused; at 8 bits that decides
                    # whether level set plus zero still fits a 256-entry codebook
                    distinct = min(distinct, 2 ** bits[t.layer] - (1 if nonzero < numel else 0))
                size += _packed_weight_bytes(numel, nonzero, distinct)
            if t.is_param:
                params += numel
                params_sparse += nonzero
            macs += t.macs_per_weight * numel
            macs_sparse += t.macs_per_weight * nonzero
        return {
            "size.packed": float(size),
            "macs.dense": float(round(macs)),
            "macs.sparse": float(round(macs_sparse)),
            "params.dense": float(params),
            "params.sparse": float(params_sparse),
        }


def _values_bytes(count: int, distinct: int) -> int:
    """Bytes of ``count`` float32 values with ``distinct`` distinct ones (raw or k-bit codes)."""
    raw = 4 * count
    if count == 0 or distinct > 256:
        return raw
    bits = max(1, math.ceil(math.log2(max(distinct, 2))))
    return min(raw, 3 + 4 * distinct + (count * bits + 7) // 8)


def _packed_weight_bytes(numel: int, nonzero: int, distinct_nonzero: int) -> int:
    """Payload bytes the packed format chooses for a weight (smallest of its encodings)."""
    if numel == 0:
        return 0
    zeros = numel - nonzero
    options = [_values_bytes(numel, distinct_nonzero + (1 if zeros else 0))]
    if zeros:
        values = _values_bytes(nonzero, distinct_nonzero)
        options.append((numel + 7) // 8 + values)
        options.append(4 + nonzero * (2 if numel < 65536 else 4) + values)
    return min(options)
