"""Map Optuna distributions to and from the unit cube the Gaussian processes work in."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

__all__ = ["UnitCubeCodec", "numeric_space"]

NumericDistribution = FloatDistribution | IntDistribution


def numeric_space(space: Mapping[str, BaseDistribution]) -> dict[str, NumericDistribution]:
    """The float and int dimensions of ``space`` (categoricals are sampled independently)."""
    return {k: d for k, d in space.items() if isinstance(d, (FloatDistribution, IntDistribution))}


class UnitCubeCodec:
    """Encode parameter dicts as rows of ``[0, 1]^d`` and decode them back (rounding ints/steps)."""

    def __init__(self, space: Mapping[str, NumericDistribution]) -> None:
        self.names = sorted(space)
        self.space = dict(space)
        lows, highs = [], []
        for name in self.names:
            dist = self.space[name]
            low, high = float(dist.low), float(dist.high)
            if dist.log:
                low, high = math.log(low), math.log(high)
            lows.append(low)
            highs.append(high)
        self._low = np.array(lows)
        self._span = np.maximum(np.array(highs) - self._low, 1e-12)
        self._log = np.array([self.space[n].log for n in self.names])

    @property
    def dims(self) -> int:
        """Number of dimensions ``d``."""
        return len(self.names)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """A `d` array in [0, 1] for one parameter dict."""
        values = np.array([float(params[n]) for n in self.names])
        values = np.where(self._log, np.log(np.maximum(values, 1e-300)), values)
        return np.clip((values - self._low) / self._span, 0.0, 1.0)

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        """The parameter dict of one `d` row of the unit cube (ints and steps rounded)."""
        raw = self._low + np.clip(row, 0.0, 1.0) * self._span
        raw = np.where(self._log, np.exp(raw), raw)
        params: dict[str, Any] = {}
        for name, value in zip(self.names, raw, strict=True):
            dist = self.space[name]
            if isinstance(dist, IntDistribution):
                step = dist.step
                value = dist.low + round((value - dist.low) / step) * step
                params[name] = int(min(max(value, dist.low), dist.high))
            else:
                if dist.step is not None:
                    value = dist.low + round((value - dist.low) / dist.step) * dist.step
                params[name] = float(min(max(value, dist.low), dist.high))
        return params

    def round_trip(self, rows: np.ndarray) -> np.ndarray:
        """Snap `n x d` rows to the representable grid (identity for continuous floats)."""
        if all(isinstance(d, FloatDistribution) and d.step is None for d in self.space.values()):
            return rows
        return np.stack([self.encode(self.decode(r)) for r in rows])
