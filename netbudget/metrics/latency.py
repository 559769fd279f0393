"""Latency: a timing harness over two backends, ONNX Runtime (default) and eager PyTorch."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netbudget.exceptions import InvalidArgumentError
from netbudget.metrics.measurement import STATISTICS, Measurement, summarize

__all__ = ["BACKENDS", "LatencyConfig", "describe_machine", "machine_text", "measure_latency"]

BACKENDS = ("onnxruntime", "torch")


@dataclass(frozen=True, kw_only=True)
class LatencyConfig:
    """How latency is measured.

    Attributes:
        backend: ``onnxruntime`` (in-memory ONNX export) or ``torch`` (eager).
        threads: intra-op threads of the backend (fixed, so measurements compare).
        batch_size: samples per forward pass.
        warmup: untimed runs before timing.
        repeats: minimum number of timed runs; each is one sample.
        min_seconds: keep timing until this much time was spent timing (sub-millisecond
            networks need hundreds of runs for a stable mean; 50 runs of 0.15 ms gave a
            5 % coefficient of variation here, 0.3 s of runs about 1 %).
        per_sample: report seconds per sample (batch time / batch size) instead of per batch.
        statistic: the summary reported as the value: mean, median, p90, p99, max.
    """

    backend: str = "onnxruntime"
    threads: int = 1
    batch_size: int = 1
    warmup: int = 10
    repeats: int = 50
    min_seconds: float = 0.3
    per_sample: bool = False
    statistic: str = "mean"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidArgumentError(f"`backend` must be one of {BACKENDS}, but got backend={self.backend!r}.")
        for name in ("threads", "batch_size", "repeats"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"`{name}` must be >= 1, but got {name}={getattr(self, name)}.")
        if not self.min_seconds >= 0:
            raise InvalidArgumentError(f"`min_seconds` must be >= 0, but got min_seconds={self.min_seconds}.")
        if self.warmup < 0:
            raise InvalidArgumentError(f"`warmup` must be >= 0, but got warmup={self.warmup}.")
        if self.statistic not in STATISTICS:
            raise InvalidArgumentError(f"`statistic` must be one of {STATISTICS}, but got statistic={self.statistic!r}.")


def describe_machine() -> dict[str, Any]:
    """The machine latency is measured on: ``cpu`` (the CPU's model name), ``avx512`` (its
    AVX-512 flags as ``/proc/cpuinfo`` names them, sorted; empty without) and ``cpus``
    (logical CPUs). Latency ratios differ between CPUs (vgg's most compressed network: 0.32x
    of dense on one, 0.45x on one with AVX-512 FP16), so a measured budget holds on the
    machine that measured it."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    lines = info.splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return {"cpu": cpu or platform.processor() or platform.machine(),
            "avx512": sorted({f for f in flags if f.startswith("avx512")}),
            "cpus": os.cpu_count() or 1}


def machine_text(machine: Mapping[str, Any]) -> str:
    """``describe_machine()``'s record in a few words: "AMD EPYC, 13 AVX-512 flags, 2 CPUs"."""
    flags = len(machine.get("avx512") or [])
    return f"{machine['cpu']}, {f'{flags} AVX-512 flags' if flags else 'no AVX-512'}, {machine['cpus']} CPUs"


Runner = Callable[[], None]


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _runner(model: nn.Module, input_shape: Sequence[int], config: LatencyConfig) -> Runner:
    shape = (config.batch_size, *input_shape)
    if config.backend == "torch":
        model = model.eval()
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))

        def run_torch() -> None:
            with torch.no_grad():
                model(x)

        return run_torch
    import onnxruntime as ort

    from netbudget.export.onnx import to_onnx_bytes

    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = ort.InferenceSession(to_onnx_bytes(model, shape), options, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}

    def run_onnx() -> None:
        session.run(None, feed)

    return run_onnx


def _time(run: Runner) -> float:
    start = time.perf_counter_ns()
    run()
    return (time.perf_counter_ns() - start) * 1e-9


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    config: LatencyConfig | None = None,
    *,
    reference: nn.Module | None = None,
) -> Measurement:
    """Time forward passes of ``model``.

    Args:
        model: the network (not modified).
        input_shape: shape of one sample, e.g. ``(1, 28, 28)``; the batch comes from ``config``.
        config: backend, threads, batch size, warm-up, repeats, statistic.
        reference: a network timed alongside, interleaved run by run, so that drift of a
            shared machine hits both; ``Measurement.ratio`` then reports the ratio.

    Returns:
        A ``Measurement`` in seconds (per batch, or per sample with ``per_sample``), with the
        raw samples.
    """
    config = config or LatencyConfig()
    with _torch_threads(config.threads):
        run = _runner(model, input_shape, config)
        run_ref = _runner(reference, input_shape, config) if reference is not None else None
        for _ in range(config.warmup):
            run()
            if run_ref is not None:
                run_ref()
        samples, ref_samples = [], []
        while len(samples) < config.repeats or sum(samples) < config.min_seconds:
            samples.append(_time(run))
            if run_ref is not None:
                ref_samples.append(_time(run_ref))
    scale = 1.0 / config.batch_size if config.per_sample else 1.0
    samples_s = tuple(s * scale for s in samples)
    return Measurement(
        value=summarize(samples_s, config.statistic),
        unit="s",
        samples=samples_s,
        reference_samples=tuple(s * scale for s in ref_samples),
        statistic=config.statistic,
    )
