"""Measure a network: latency, packed size, MACs / params, peak memory, user metrics."""

from __future__ import annotations

from netbudget.metrics.latency import (
    BACKENDS,
    LatencyConfig,
    describe_machine,
    machine_text,
    measure_latency,
)
from netbudget.metrics.macs import count_macs, count_params, layer_macs
from netbudget.metrics.measurement import STATISTICS, Measurement, summarize
from netbudget.metrics.memory import peak_activation_bytes
from netbudget.metrics.registry import (
    MeasureContext,
    measure,
    measure_all,
    register_metric,
    unregister_metric,
    user_metric_kind,
)

__all__ = [
    "BACKENDS",
    "STATISTICS",
    "LatencyConfig",
    "MeasureContext",
    "Measurement",
    "count_macs",
    "count_params",
    "describe_machine",
    "layer_macs",
    "machine_text",
    "measure",
    "measure_all",
    "measure_latency",
    "peak_activation_bytes",
    "register_metric",
    "summarize",
    "unregister_metric",
    "user_metric_kind",
]
