"""Metrics by name: the built-in ones and user metrics registered with their unit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from netbudget.constraints import BUILTIN_METRICS, Constraint, MetricKind
from netbudget.exceptions import InvalidArgumentError, UnknownNameError
from netbudget.metrics.latency import LatencyConfig, measure_latency
from netbudget.metrics.macs import count_macs, count_params
from netbudget.metrics.measurement import Measurement
from netbudget.metrics.memory import peak_activation_bytes

__all__ = ["MeasureContext", "measure", "measure_all", "register_metric", "unregister_metric", "user_metric_kind"]

UserMetric = Callable[[nn.Module], float]
_USER: dict[str, tuple[UserMetric, str]] = {}


def register_metric(name: str, fn: UserMetric, unit: str) -> None:
    """Register a user metric ``fn(model) -> float`` in ``unit`` under ``name``.

    Budgets can then name it: ``register_metric("energy", joules, "J")`` allows
    ``"energy <= 0.2 J"`` and ``"energy <= 0.5x"``.

    Raises:
        InvalidArgumentError: the name is taken (built-in or already registered) or malformed.
    """
    if not name.isidentifier() or name != name.lower():
        raise InvalidArgumentError(f"Metric names are lower-case identifiers, but got {name!r}.")
    if name in BUILTIN_METRICS or name in _USER:
        raise InvalidArgumentError(f"A metric named {name!r} is already registered.")
    if not callable(fn):
        raise InvalidArgumentError(f"`fn` for metric {name!r} must be callable, got {type(fn).__name__}.")
    _USER[name] = (fn, unit)


def unregister_metric(name: str) -> None:
    """Remove a user metric (built-in metrics cannot be removed)."""
    if name not in _USER:
        raise UnknownNameError(f"No user metric named {name!r}; registered: {sorted(_USER)}.")
    del _USER[name]


def user_metric_kind(name: str) -> MetricKind | None:
    """The unit description of a registered user metric, or ``None``."""
    if name not in _USER:
        return None
    unit = _USER[name][1]
    return MetricKind(unit, {unit: 1.0, "": 1.0}, ("value",), "value", False)


@dataclass(frozen=True, kw_only=True)
class MeasureContext:
    """What a measurement needs besides the network.

    Attributes:
        input_shape: shape of one sample, e.g. ``(1, 28, 28)``.
        latency: latency harness settings (its ``statistic`` is overridden per constraint).
        reference: network timed alongside latency measurements (drift guard), optional.
        memory_batch_size: batch size of the peak-memory forward pass (default: the latency one).
    """

    input_shape: tuple[int, ...]
    latency: LatencyConfig = LatencyConfig()
    reference: nn.Module | None = None
    memory_batch_size: int | None = None


def measure(model: nn.Module, constraint: Constraint | str, context: MeasureContext) -> Measurement:
    """Measure the metric a constraint bounds (``Constraint`` or a key like ``latency.p99``)."""
    metric, statistic = (
        (constraint.metric, constraint.statistic) if isinstance(constraint, Constraint) else _split(constraint)
    )
    batch = (context.latency.batch_size, *context.input_shape)
    if metric == "latency":
        config = LatencyConfig(**{**context.latency.__dict__, "statistic": statistic})
        return measure_latency(model, context.input_shape, config, reference=context.reference)
    if metric == "size":
        from netbudget.export.packed import packed_size

        return Measurement(float(packed_size(model.state_dict())), "B", statistic="packed")
    if metric == "macs":
        shape = (1, *context.input_shape)
        return Measurement(float(count_macs(model, shape, sparse=statistic == "sparse")), "MACs", statistic=statistic)
    if metric == "params":
        return Measurement(float(count_params(model, sparse=statistic == "sparse")), "params", statistic=statistic)
    if metric == "memory":
        memory_batch = (context.memory_batch_size or batch[0], *context.input_shape)
        return Measurement(float(peak_activation_bytes(model, memory_batch)), "B", statistic="peak")
    if metric in _USER:
        fn, unit = _USER[metric]
        return Measurement(float(fn(model)), unit, statistic="value")
    raise UnknownNameError(f"Unknown metric {metric!r}; known: {sorted([*BUILTIN_METRICS, *_USER])}.")


def _split(key: str) -> tuple[str, str]:
    metric, _, statistic = key.partition(".")
    if not statistic:
        kind = BUILTIN_METRICS.get(metric) or user_metric_kind(metric)
        statistic = kind.default_statistic if kind else ""
    return metric, statistic


def measure_all(model: nn.Module, context: MeasureContext, *, metrics: Sequence[str] | None = None) -> dict[str, float]:
    """Every built-in metric (plus user metrics) as the flat dict of ``netbudget measure --json``.

    Keys: ``latency_ms`` (mean), ``latency_median_ms``, ``latency_p90_ms``, ``latency_p99_ms``,
    ``latency_max_ms``, ``latency_cv``, ``size_bytes``, ``macs``, ``macs_sparse``, ``params``,
    ``params_sparse``, ``memory_bytes``, and each user metric by name.
    """
    out: dict[str, float] = {}
    latency = measure(model, "latency.mean", context)
    out["latency_ms"] = latency.value * 1e3
    for stat in ("median", "p90", "p99", "max"):
        out[f"latency_{stat}_ms"] = latency.stat(stat) * 1e3
    out["latency_cv"] = latency.spread
    out["size_bytes"] = measure(model, "size", context).value
    out["macs"] = measure(model, "macs.dense", context).value
    out["macs_sparse"] = measure(model, "macs.sparse", context).value
    out["params"] = measure(model, "params.dense", context).value
    out["params_sparse"] = measure(model, "params.sparse", context).value
    out["memory_bytes"] = measure(model, "memory", context).value
    for name in _USER:
        out[name] = measure(model, name, context).value
    if metrics is not None:
        out = {k: v for k, v in out.items() if k in metrics}
    return out
