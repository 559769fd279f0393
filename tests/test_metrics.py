from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from netbudget.exceptions import InvalidArgumentError, UnknownNameError
from netbudget.export.packed import pack_state_dict, packed_size, unpack_state_dict
from netbudget.metrics import (
    LatencyConfig,
    MeasureContext,
    count_macs,
    count_params,
    describe_machine,
    machine_text,
    measure,
    measure_latency,
    peak_activation_bytes,
    register_metric,
    summarize,
    unregister_metric,
)
from netbudget.zoo import MODELS, build_model


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.int32) if t.dtype == torch.float32 else t


def _compress_(model: nn.Module, sparsity: float, bits: int | None, seed: int) -> None:
    """Zero the smallest weights and snap the rest onto a uniform 2^bits-level codebook."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                w = module.weight
                w.add_(torch.randn(w.shape, generator=gen) * 1e-3)
                k = int(sparsity * w.numel())
                if k:
                    threshold = w.abs().flatten().kthvalue(k).values
                    w[w.abs() <= threshold] = 0.0
                if bits is not None:
                    nz = w != 0
                    if nz.any():
                        levels = torch.linspace(float(w[nz].min()), float(w[nz].max()), 2**bits - 1)
                        snapped = levels[(w[nz][:, None] - levels).abs().argmin(1)]
                        w[nz] = torch.where(snapped == 0, levels[-1], snapped)


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sparsity=st.floats(0.0, 0.99), bits=st.one_of(st.none(), st.integers(2, 8)), seed=st.integers(0, 99))
def test_pack_round_trip_is_bit_exact(name: str, sparsity: float, bits: int | None, seed: int) -> None:
    model = build_model(name, input_size=8, width=0.5)
    _compress_(model, sparsity, bits, seed)
    state = model.state_dict()
    data = pack_state_dict(state)
    assert len(data) == packed_size(state)
    restored = unpack_state_dict(data)
    assert list(restored) == list(state)
    for key, tensor in state.items():
        assert restored[key].dtype == tensor.dtype and restored[key].shape == tensor.shape
        assert torch.equal(_bits(restored[key]), _bits(tensor)), key


def test_negative_zero_and_odd_dtypes_survive() -> None:
    state = {
        "w": torch.tensor([[0.0, -0.0], [1.5, 0.0]]),
        "steps": torch.tensor(7),
        "half": torch.tensor([1.0, 2.0], dtype=torch.float16),
        "flag": torch.tensor([True, False]),
    }
    restored = unpack_state_dict(pack_state_dict(state))
    assert torch.signbit(restored["w"][0, 1]) and not torch.signbit(restored["w"][0, 0])
    assert restored["steps"].item() == 7 and restored["half"].dtype == torch.float16
    assert restored["flag"].tolist() == [True, False]


def test_size_falls_as_sparsity_rises_and_bits_fall() -> None:
    sizes_sparsity, sizes_bits = [], []
    for sparsity in (0.0, 0.3, 0.6, 0.9):
        model = build_model("vgg")
        _compress_(model, sparsity, None, 0)
        sizes_sparsity.append(packed_size(model.state_dict()))
    for bits in (8, 6, 4, 2):
        model = build_model("vgg")
        _compress_(model, 0.5, bits, 0)
        sizes_bits.append(packed_size(model.state_dict()))
    assert all(a > b for a, b in zip(sizes_sparsity, sizes_sparsity[1:])), sizes_sparsity
    assert all(a > b for a, b in zip(sizes_bits, sizes_bits[1:])), sizes_bits
    dense_float_bytes = sum(p.numel() * 4 for p in build_model("vgg").state_dict().values())
    assert sizes_bits[-1] < 0.15 * dense_float_bytes  # 50 % sparse, 2-bit codes


def test_packed_data_errors() -> None:
    data = pack_state_dict({"w": torch.ones(3, 3)})
    with pytest.raises(InvalidArgumentError, match="bad magic"):
        unpack_state_dict(b"XXXX" + data[4:])
    with pytest.raises(InvalidArgumentError, match="truncated"):
        unpack_state_dict(data[:-3])
    with pytest.raises(InvalidArgumentError, match="trailing bytes"):
        unpack_state_dict(data + b"\0")


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)  # 8x8 in -> 4 x 8 x 8 out
        self.pool = nn.MaxPool2d(2)  # -> 4 x 4 x 4
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


def test_macs_match_a_hand_count() -> None:
    model = _Tiny()
    conv = 4 * 8 * 8 * (2 * 3 * 3)  # out elements x (cin x k x k) = 4,608
    fc = 64 * 10  # 640
    assert count_macs(model, (1, 2, 8, 8)) == conv + fc == 5248
    assert count_macs(model, (3, 2, 8, 8)) == 3 * 5248
    assert count_params(model) == 4 * 2 * 9 + 4 + 64 * 10 + 10
    with torch.no_grad():
        model.conv.weight[0].zero_()  # one of four filters gone
        model.fc.weight[:, :32].zero_()  # half of the inputs
    assert count_macs(model, (1, 2, 8, 8), sparse=True) == 3 * 8 * 8 * 18 + 32 * 10
    assert count_params(model, sparse=True) == 3 * 18 + 4 + 320 + 10


def test_depthwise_macs() -> None:
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert count_macs(conv, (1, 8, 5, 5)) == 8 * 25 * 9


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_latency_statistics_are_ordered_and_positive(backend: str) -> None:
    model = build_model("vgg", input_size=8)
    m = measure_latency(model, (1, 8, 8), LatencyConfig(backend=backend, repeats=30, warmup=3, batch_size=4, min_seconds=0))
    stats = [m.stat(s) for s in ("min", "median", "p90", "p99", "max")]
    assert stats[0] > 0 and stats == sorted(stats)
    assert m.value == pytest.approx(np.mean(m.samples)) and len(m.samples) == 30
    per_sample = measure_latency(model, (1, 8, 8), LatencyConfig(backend=backend, repeats=30, batch_size=4, per_sample=True))
    assert per_sample.value < m.value  # a quarter of a batch, give or take noise


def test_drift_guard_reports_a_ratio_to_the_reference() -> None:
    small = build_model("vgg", input_size=28, width=0.25)
    big = build_model("vgg", input_size=28, width=2.0)
    m = measure_latency(small, (1, 28, 28), LatencyConfig(repeats=20, batch_size=8, min_seconds=0), reference=big)
    assert len(m.reference_samples) == len(m.samples) == 20  # interleaved, one reference run per run
    assert m.ratio is not None and 0 < m.ratio < 0.8


def test_latency_config_errors() -> None:
    with pytest.raises(InvalidArgumentError, match=r"`backend` must be one of \('onnxruntime', 'torch'\), but got backend='tvm'"):
        LatencyConfig(backend="tvm")
    with pytest.raises(InvalidArgumentError, match="`repeats` must be >= 1"):
        LatencyConfig(repeats=0)
    with pytest.raises(InvalidArgumentError, match="`statistic` must be one of"):
        LatencyConfig(statistic="p95")
    with pytest.raises(InvalidArgumentError, match="Unknown statistic 'p95'"):
        summarize([1.0], "p95")


def test_the_machine_is_described_from_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netbudget.metrics import latency

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu sse2 avx512f avx2 avx512_fp16 "
                       "avx512bw\n\nprocessor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx512f\n")
    real_path = latency.Path
    monkeypatch.setattr(latency, "Path", lambda p: real_path(cpuinfo) if p == "/proc/cpuinfo" else real_path(p))
    machine = describe_machine()
    assert machine["cpu"] == "Some CPU 9000" and machine["cpus"] >= 1
    assert machine["avx512"] == ["avx512_fp16", "avx512bw", "avx512f"]  # the first CPU's flags, sorted
    assert machine_text({**machine, "cpus": 4}) == "Some CPU 9000, 3 AVX-512 flags, 4 CPUs"
    assert machine_text({"cpu": "Old CPU", "avx512": [], "cpus": 2}) == "Old CPU, no AVX-512, 2 CPUs"
    cpuinfo.write_text("")  # no model name (some ARM kernels): the platform's name
    assert describe_machine()["cpu"] and describe_machine()["avx512"] == []


def test_peak_memory_scales_with_batch_and_width() -> None:
    model = build_model("vgg", input_size=28)
    one, eight = peak_activation_bytes(model, (1, 1, 28, 28)), peak_activation_bytes(model, (8, 1, 28, 28))
    first_conv_out = 16 * 28 * 28 * 4
    assert one >= first_conv_out
    assert 2 * one < eight < 10 * one  # activations grow with the batch; scratch buffers do not
    wide = peak_activation_bytes(build_model("vgg", input_size=28, width=2.0), (1, 1, 28, 28))
    assert wide > 1.5 * one


def test_measure_by_constraint_and_user_metrics() -> None:
    model = build_model("resnet20", input_size=8)
    context = MeasureContext(input_shape=(1, 8, 8), latency=LatencyConfig(repeats=5, warmup=1))
    assert measure(model, "macs", context).value == count_macs(model, (1, 1, 8, 8))
    assert measure(model, "size", context).value == packed_size(model.state_dict())
    assert measure(model, "latency.p99", context).statistic == "p99"
    register_metric("conv_count", lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules()), "convs")
    try:
        assert measure(model, "conv_count", context).value == 21  # stem + 9 blocks x 2 + 2 projections
        with pytest.raises(InvalidArgumentError, match="already registered"):
            register_metric("conv_count", len, "x")
        with pytest.raises(InvalidArgumentError, match="already registered"):
            register_metric("latency", len, "s")
    finally:
        unregister_metric("conv_count")
    with pytest.raises(UnknownNameError, match="Unknown metric 'conv_count'"):
        measure(model, "conv_count", context)


def test_min_seconds_extends_timing_of_fast_networks() -> None:
    model = build_model("vgg", input_size=8, width=0.25)
    m = measure_latency(model, (1, 8, 8), LatencyConfig(backend="torch", repeats=5, warmup=1, min_seconds=0.05))
    assert sum(m.samples) >= 0.05 and len(m.samples) > 5
    with pytest.raises(InvalidArgumentError, match="`min_seconds` must be >= 0"):
        LatencyConfig(min_seconds=-1.0)
