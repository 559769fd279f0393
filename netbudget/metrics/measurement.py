"""The result of measuring one metric of one network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netbudget.exceptions import InvalidArgumentError

__all__ = ["STATISTICS", "Measurement", "summarize"]

STATISTICS = ("mean", "median", "p90", "p99", "max", "min")


def summarize(samples: np.ndarray | list[float] | tuple[float, ...], statistic: str) -> float:
    """One statistic of raw samples: mean, median, p90, p99, max or min."""
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        raise InvalidArgumentError("Cannot summarise an empty list of samples.")
    if statistic == "mean":
        return float(values.mean())
    if statistic == "median":
        return float(np.median(values))
    if statistic in ("p90", "p99"):
        return float(np.percentile(values, float(statistic[1:])))
    if statistic == "max":
        return float(values.max())
    if statistic == "min":
        return float(values.min())
    raise InvalidArgumentError(f"Unknown statistic {statistic!r}; expected one of {STATISTICS}.")


@dataclass(frozen=True)
class Measurement:
    """A measured or counted value in a base unit.

    Attributes:
        value: the reported value (for latency: the statistic asked for) in ``unit``.
        unit: base unit: ``s``, ``B``, ``MACs``, ``params`` or a user metric's unit.
        samples: raw samples where the metric is measured (latency: seconds per batch or
            per sample), empty where it is counted.
        reference_samples: samples of the reference network timed alongside (drift guard).
        statistic: which summary of the samples ``value`` is.
    """

    value: float
    unit: str
    samples: tuple[float, ...] = ()
    reference_samples: tuple[float, ...] = ()
    statistic: str = "value"

    def stat(self, name: str) -> float:
        """Another statistic of the raw samples (the value itself when there are none)."""
        return summarize(self.samples, name) if self.samples else self.value

    @property
    def spread(self) -> float:
        """Coefficient of variation of the samples (std / mean), 0 when counted."""
        if len(self.samples) < 2:
            return 0.0
        values = np.asarray(self.samples)
        return float(values.std(ddof=1) / values.mean())

    @property
    def ratio(self) -> float | None:
        """The value divided by the same statistic of the reference network, if timed alongside."""
        if not self.reference_samples:
            return None
        return self.value / summarize(self.reference_samples, self.statistic)
