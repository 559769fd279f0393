"""The search space: compressible units of a network and the per-unit knobs over them.

Units are Conv2d / Linear layers. For channel pruning, layers whose channels are coupled
(residual adds, concatenations, depthwise convolutions) form one group, found with
Torch-Pruning's dependency graph, so one knob acts on the whole coupled group. Grouping
policies bound the dimension:

* ``layer``: one knob per unit (channel group, or layer for ``prune`` / ``bits``);
* ``block``: one knob per enclosing block (the nearest ancestor that is not a plain
  ``Sequential`` / ``ModuleList``: a residual block, an inverted residual, a dense layer);
  units outside any block keep their own knob;
* user groups: ``{"early": "features.[0-3]*"}`` fnmatch patterns on unit names; matching
  units share one knob named after the group, the rest follow the policy.

Knob values are compression amounts in [0, 1]: the fraction of channels removed
(``channels``), the fraction of weights set to zero (``prune``), or an integer bit width
(``bits``, 2-8; lower compresses more).
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from netbudget.exceptions import InvalidArgumentError

__all__ = ["OPERATORS", "POLICIES", "Dimension", "SearchSpace", "build_space", "channel_groups"]

OPERATORS = ("channels", "prune", "bits")
POLICIES = ("layer", "block")


@dataclass(frozen=True, kw_only=True)
class Dimension:
    """One knob of the search space.

    Attributes:
        name: ``"<operator>:<unit or group name>"``, e.g. ``channels:layers.3``.
        operator: ``channels``, ``prune`` or ``bits``.
        low: smallest value (least compression for ratios, fewest bits for ``bits``).
        high: largest value.
        targets: layer names (``prune``, ``bits``) or channel-group root names (``channels``).
        integer: whether values are integers (``bits``).
    """

    name: str
    operator: str
    low: float
    high: float
    targets: tuple[str, ...]
    integer: bool = False

    @property
    def least_compressed(self) -> float:
        """The value that compresses least: ``low`` for ratios, ``high`` for bit widths."""
        return self.high if self.operator == "bits" else self.low

    @property
    def most_compressed(self) -> float:
        """The value that compresses most."""
        return self.low if self.operator == "bits" else self.high


@dataclass(frozen=True)
class SearchSpace:
    """Named dimensions over a network's compressible units.

    Attributes:
        dimensions: the knobs, in a stable order.
        input_shape: one sample's shape, e.g. ``(1, 28, 28)`` (needed to trace the network).
        round_to: kept channel counts are rounded to a multiple of this (1 disables).
        channel_counts: channels of every channel group in the original network.
    """

    dimensions: tuple[Dimension, ...]
    input_shape: tuple[int, ...]
    round_to: int = 8
    channel_counts: Mapping[str, int] | None = None

    @property
    def names(self) -> list[str]:
        """Dimension names in order."""
        return [d.name for d in self.dimensions]

    def __len__(self) -> int:
        return len(self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise KeyError(f"No dimension {name!r}; known: {self.names}.")

    def validate(self, config: Mapping[str, Any]) -> dict[str, float]:
        """Check a configuration: every key known, every value inside its bounds.

        Missing dimensions take their least-compressed value.
        """
        unknown = sorted(set(config) - set(self.names))
        if unknown:
            raise InvalidArgumentError(f"Unknown dimensions {unknown}; the space has {self.names}.")
        out: dict[str, float] = {}
        for dim in self.dimensions:
            value = float(config.get(dim.name, dim.least_compressed))
            if not dim.low - 1e-9 <= value <= dim.high + 1e-9:
                raise InvalidArgumentError(
                    f"Value {value} of {dim.name!r} is outside its bounds [{dim.low}, {dim.high}]."
                )
            out[dim.name] = round(value) if dim.integer else value
        return out

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """A `d` vector in the unit cube, 0 = least compressed, 1 = most compressed."""
        values = self.validate(config)
        row = []
        for dim in self.dimensions:
            span = dim.high - dim.low or 1.0
            u = (values[dim.name] - dim.low) / span
            row.append(1.0 - u if dim.operator == "bits" else u)
        return np.asarray(row)

    def decode(self, row: Sequence[float] | np.ndarray) -> dict[str, float]:
        """Inverse of ``encode`` (integers rounded)."""
        if len(row) != len(self.dimensions):
            raise InvalidArgumentError(f"Expected a vector of {len(self.dimensions)} values, got {len(row)}.")
        config: dict[str, float] = {}
        for dim, u in zip(self.dimensions, row, strict=True):
            u = float(np.clip(u, 0.0, 1.0))
            u = 1.0 - u if dim.operator == "bits" else u
            value = dim.low + u * (dim.high - dim.low)
            config[dim.name] = round(value) if dim.integer else value
        return config

    def uniform(self, amount: float) -> dict[str, float]:
        """Every dimension at the same position ``amount`` in [0, 1] of its compression range."""
        return self.decode(np.full(len(self.dimensions), amount))

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions of every dimension (for samplers)."""
        from optuna.distributions import FloatDistribution, IntDistribution

        return {
            d.name: IntDistribution(int(d.low), int(d.high)) if d.integer else FloatDistribution(d.low, d.high)
            for d in self.dimensions
        }

    def describe(self) -> str:
        """A table of the dimensions a user can read."""
        rows = [("dimension", "range", "acts on")]
        for d in self.dimensions:
            span = f"{d.low:g}-{d.high:g}" + (" bits" if d.operator == "bits" else "")
            targets = ", ".join(d.targets)
            if d.operator == "channels" and self.channel_counts:
                targets = ", ".join(f"{t} ({self.channel_counts[t]} ch)" for t in d.targets)
            rows.append((d.name, span, targets if len(targets) < 70 else targets[:67] + "..."))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def channel_groups(model: nn.Module, input_shape: Sequence[int], *, exclude: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Coupled channel groups of ``model`` from Torch-Pruning's dependency graph.

    Returns:
        ``{root layer name: {"channels": int, "members": [layer names]}}`` for every group
        whose root is not in ``exclude``.
    """
    import torch_pruning as tp

    names = {module: name for name, module in model.named_modules()}
    ignored = [m for n, m in model.named_modules() if n in set(exclude)]
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *input_shape))
    out: dict[str, dict[str, Any]] = {}
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        root = names[group[0].dep.target.module]
        members = sorted(
            {names[item.dep.target.module] for item in group if isinstance(item.dep.target.module, (nn.Conv2d, nn.Linear))}
        )
        out[root] = {"channels": len(group[0].idxs), "members": members}
    return out


def _block_of(modules: Mapping[str, nn.Module], name: str) -> str:
    """Nearest ancestor of ``name`` that is a real block (not a container, not the root)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:cut])
        if not isinstance(modules[parent], (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return parent
    return name


def build_space(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    operators: Sequence[str] = ("channels",),
    policy: str = "layer",
    groups: Mapping[str, str] | None = None,
    max_channel_ratio: float = 0.8,
    max_prune: float = 0.95,
    bits: tuple[int, int] = (2, 8),
    round_to: int = 8,
    include_first: bool = True,
    include_output: bool = False,
) -> SearchSpace:
    """Discover the compressible units of ``model`` and build the knobs over them.

    Args:
        model: the network (not modified; a copy is traced).
        input_shape: one sample's shape, e.g. ``(1, 28, 28)``.
        operators: any of ``channels``, ``prune``, ``bits``.
        policy: ``layer`` or ``block`` (see the module docstring).
        groups: user groups, ``{group name: fnmatch pattern on unit names}``.
        max_channel_ratio: largest fraction of a group's channels that may be removed
            (default 0.8: keep at least 20 %, since near-empty layers are a bottleneck
            fine-tuning cannot repair).
        max_prune: largest fraction of a layer's weights that may be zeroed.
        bits: smallest and largest weight bit width for ``bits``.
        round_to: kept channel counts are rounded to this multiple (1 disables).
        include_first: whether the first layer (its output channels, its weights) is searched.
        include_output: whether the output layer's weights are pruned / quantised (its
            output channels, the classes, are never removed).

    Raises:
        InvalidArgumentError: an unknown operator or policy, a bound out of range, or a
            network without Conv2d / Linear layers.
    """
    unknown = sorted(set(operators) - set(OPERATORS))
    if unknown or not operators:
        raise InvalidArgumentError(f"`operators` must be a non-empty subset of {OPERATORS}, but got {list(operators)}.")
    if policy not in POLICIES:
        raise InvalidArgumentError(f"`policy` must be one of {POLICIES}, but got policy={policy!r}.")
    if not 0 < max_channel_ratio < 1:
        raise InvalidArgumentError(f"`max_channel_ratio` must be in (0, 1), but got {max_channel_ratio=}.")
    if not 0 < max_prune < 1:
        raise InvalidArgumentError(f"`max_prune` must be in (0, 1), but got {max_prune=}.")
    if not 1 <= bits[0] <= bits[1] <= 16:
        raise InvalidArgumentError(f"`bits` must satisfy 1 <= low <= high <= 16, but got {bits=}.")
    if round_to < 1:
        raise InvalidArgumentError(f"`round_to` must be >= 1, but got {round_to=}.")
    traced = copy.deepcopy(model).eval()
    layers = [n for n, m in traced.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise InvalidArgumentError("The network has no Conv2d or Linear layer to compress.")
    first, output = layers[0], layers[-1]
    weight_units = [n for n in layers if (include_first or n != first) and (include_output or n != output)]
    patterns = dict(groups or {})
    modules = dict(traced.named_modules())

    def knob_of(unit: str) -> str:
        for group_name, pattern in patterns.items():
            if fnmatch.fnmatchcase(unit, pattern):
                return group_name
        return _block_of(modules, unit) if policy == "block" else unit

    dims: list[Dimension] = []
    counts: dict[str, int] = {}
    for operator in operators:
        if operator == "channels":
            found = channel_groups(traced, input_shape, exclude=[output] + ([] if include_first else [first]))
            units = list(found)
            counts = {root: found[root]["channels"] for root in units}
        else:
            units = weight_units
        knobs: dict[str, list[str]] = {}
        for unit in units:
            knobs.setdefault(knob_of(unit), []).append(unit)
        for knob, targets in knobs.items():
            if operator == "channels":
                dims.append(Dimension(name=f"channels:{knob}", operator="channels", low=0.0, high=max_channel_ratio, targets=tuple(targets)))
            elif operator == "prune":
                dims.append(Dimension(name=f"prune:{knob}", operator="prune", low=0.0, high=max_prune, targets=tuple(targets)))
            else:
                dims.append(Dimension(name=f"bits:{knob}", operator="bits", low=float(bits[0]), high=float(bits[1]), targets=tuple(targets), integer=True))
    return SearchSpace(tuple(dims), tuple(input_shape), round_to, counts)
