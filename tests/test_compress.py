from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from netbudget.compress import (
    QuantizeConfig,
    codebook,
    compress,
    kept_channels,
    magnitude_mask,
    snap,
)
from netbudget.data import load_dataset
from netbudget.exceptions import InvalidArgumentError
from netbudget.export.onnx import to_onnx_bytes
from netbudget.space import build_space
from netbudget.train import FitConfig, evaluate, fine_tune
from netbudget.zoo import MODELS, build_model

SHAPE = (1, 8, 8)


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_configurations_on_every_zoo_network(name: str, data: st.DataObject) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_size=8, width=0.5)
    original = copy.deepcopy(model)
    space = build_space(model, SHAPE, operators=("channels", "prune", "bits"), round_to=data.draw(st.sampled_from([1, 4])))
    u = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=len(space), max_size=len(space))))
    config = space.decode(u)
    result = compress(model, space, config)
    assert _state_equal(model, original), "the input network was changed"
    x = torch.randn(3, *SHAPE)
    assert result.module(x).shape == (3, 10)
    # channel counts equal the config (after rounding)
    for dim in space.dimensions:
        if dim.operator == "channels":
            for root in dim.targets:
                before, after = result.channels[root]
                assert before == space.channel_counts[root]
                assert after == kept_channels(before, config[dim.name], space.round_to)
    modules = dict(result.module.named_modules())
    for dim in space.dimensions:
        for layer in dim.targets:
            if dim.operator == "prune":
                weight = modules[layer].weight
                expected = int(config[dim.name] * weight.numel())
                assert int((weight == 0).sum()) >= expected
                assert int((weight == 0).sum()) <= max(expected, int((weight == 0).sum()))
                assert abs(result.sparsity(layer) - config[dim.name]) <= 1.0 / weight.numel() + 1e-6 or (
                    result.sparsity(layer) > config[dim.name]  # codebook snapping never adds zeros; channel
                )  # pruning may leave already-zero weights
            elif dim.operator == "bits":
                assert result.bit_width(layer) <= int(config[dim.name])
    # same config, same result
    again = compress(model, space, config)
    assert _state_equal(again.module, result.module)
    # ONNX export of the compressed network runs and agrees with torch
    session = ort.InferenceSession(to_onnx_bytes(result.module, (3, *SHAPE)), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, result.module(x).detach().numpy(), rtol=1e-3, atol=1e-4)


def test_pruned_and_quantised_zeros_are_positive_zero() -> None:
    # -0.0 is a distinct bit pattern to the packed format: a negative weight times 0 would cost bits
    model = build_model("vgg", input_size=8)
    space = build_space(model, SHAPE, operators=("prune", "bits"))
    result = compress(model, space, {n: (0.6 if n.startswith("prune") else 3) for n in space.names})
    result.enforce_()
    for name in result.masks:
        weight = dict(result.module.named_parameters())[name]
        zeros = weight[weight == 0]
        assert zeros.numel() > 0 and not bool(torch.signbit(zeros).any()), name


def test_magnitude_mask_counts_existing_zeros() -> None:
    weight = torch.tensor([0.0, 0.0, 0.5, -0.1, 0.3, 2.0])
    assert magnitude_mask(weight, 0.2).tolist() == [False, False, True, True, True, True]  # 1 < 2 zeros already
    assert magnitude_mask(weight, 0.5).tolist() == [False, False, True, False, True, True]
    with pytest.raises(InvalidArgumentError, match=r"`fraction` must be in \[0, 1\)"):
        magnitude_mask(weight, 1.0)


def test_codebook_levels_are_nonzero_and_snap_keeps_zeros() -> None:
    weight = torch.tensor([[0.0, -1.0, -0.4, 0.01], [0.3, 0.0, 0.9, 1.0]])
    for method in ("uniform", "kmeans"):
        levels = codebook(weight, 2, QuantizeConfig(method=method))
        assert len(levels) == 4 and bool((levels != 0).all())
        snapped = snap(weight, levels)
        assert snapped[0, 0] == 0 and snapped[1, 1] == 0
        assert set(snapped[snapped != 0].tolist()) <= set(levels.tolist())
    with pytest.raises(InvalidArgumentError, match="`method` must be one of"):
        QuantizeConfig(method="lloyd-max")


def test_kept_channels_rounding() -> None:
    assert kept_channels(64, 0.5, 8) == 32
    assert kept_channels(64, 0.45, 8) == 32  # 35.2 -> nearest multiple
    assert kept_channels(64, 0.45, 1) == 35
    assert kept_channels(64, 0.99, 8) == 8  # never below one multiple
    assert kept_channels(6, 0.5, 8) == 3  # groups smaller than the multiple round to channels
    with pytest.raises(InvalidArgumentError, match="`ratio` must be in"):
        kept_channels(64, 1.0)


def test_kept_channels_rounding_to_16_keeps_8_for_narrow_layers() -> None:
    # multiples of 16 (AVX-512's channel block); under the half-way point 12, a layer keeps 8
    assert [kept_channels(64, r, 16) for r in (0.0, 0.3, 0.6, 0.8, 0.85, 0.9)] == [64, 48, 32, 16, 8, 8]
    assert [kept_channels(32, r, 16) for r in (0.0, 0.5, 0.6, 0.7)] == [32, 16, 16, 8]  # 12.8 -> 16, 9.6 -> 8
    assert kept_channels(16, 0.5, 16) == 8 and kept_channels(16, 0.2, 16) == 16
    assert kept_channels(8, 0.3, 16) == 8  # a layer thinned to 8 stays at 8 in later steps
    assert kept_channels(12, 0.5, 16) == 8 and kept_channels(12, 0.0, 16) == 12
    assert kept_channels(6, 0.5, 16) == 3  # groups under 8 channels are not rounded
    assert kept_channels(64, 0.85, 8) == 8 and kept_channels(64, 0.8, 8) == 16  # rounding to 8 is unchanged


def test_compress_rejects_bad_configs() -> None:
    model = build_model("vgg", input_size=8)
    space = build_space(model, SHAPE)
    with pytest.raises(InvalidArgumentError, match="Unknown dimensions"):
        compress(model, space, {"prune:features.0": 0.5})


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


@pytest.mark.slow
def test_fine_tuning_keeps_zeros_and_codebooks(mnist, vgg_mnist5k) -> None:
    model = vgg_mnist5k
    space = build_space(model, (1, 28, 28), operators=("prune", "bits"))
    config = {n: (0.8 if n.startswith("prune") else 3) for n in space.names}
    result = compress(model, space, config)
    before = evaluate(result.module, mnist.test)
    fine_tune(result, mnist, FitConfig(epochs=1, max_steps=20, lr=0.01), teacher=model, progress=False)
    after = evaluate(result.module, mnist.test)
    params = dict(result.module.named_parameters())
    for name, mask in result.masks.items():
        assert bool((params[name][~mask] == 0).all()), f"{name}: pruned weights came back"
    for name, levels in result.codebooks.items():
        nonzero = params[name][params[name] != 0]
        assert bool(torch.isin(nonzero, levels).all()), f"{name}: weights left their codebook"
    assert after > before + 0.3 and after >= 0.9  # measured: 0.29 -> 0.97


@pytest.mark.slow
def test_accuracy_recovers_after_half_the_channels_go(mnist, vgg_mnist5k) -> None:
    model = vgg_mnist5k
    dense = evaluate(model, mnist.test)
    space = build_space(model, (1, 28, 28), operators=("channels",))
    result = compress(model, space, {n: 0.5 for n in space.names})
    assert all(after == before // 2 for before, after in result.channels.values())
    pruned = evaluate(result.module, mnist.test)
    fine_tune(result, mnist, FitConfig(epochs=1, lr=0.01), progress=False)
    recovered = evaluate(result.module, mnist.test)
    # measured here: dense 97.9 %, pruned 23.5 %, after one epoch 97.4 %
    assert pruned < 0.6 and recovered >= 0.95 and recovered >= dense - 0.02


def test_codebooks_hold_only_the_levels_in_use_so_fine_tuning_never_grows_the_packed_size() -> None:
    from netbudget.export.packed import packed_size

    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("vgg", in_channels=1, num_classes=10, input_size=8)
    space = build_space(model, (1, 8, 8), operators=("prune", "bits"))
    # 6 bits over the few weights 90 % pruning leaves: k-means leaves levels empty
    config = {n: (0.9 if n.startswith("prune") else 6) for n in space.names}
    result = compress(model, space, config)
    params = dict(result.module.named_parameters())
    for name, levels in result.codebooks.items():
        used = params[name][params[name] != 0].unique()
        assert torch.equal(levels, used), f"{name}: {levels.numel()} levels, {used.numel()} in use"
    before = packed_size(result.module.state_dict())
    fine_tune(result, data, FitConfig(epochs=1, max_steps=30, lr=0.05, seed=0), progress=False)
    after = packed_size(result.module.state_dict())
    assert after <= before, f"packed size grew from {before} to {after} bytes"
