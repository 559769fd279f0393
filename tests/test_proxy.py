from __future__ import annotations

import copy

import pytest
import torch

from netbudget.compress import compress
from netbudget.data import load_dataset
from netbudget.exceptions import InvalidArgumentError
from netbudget.proxy import ProxyConfig, agreement, reestimate_batchnorm_, score
from netbudget.space import build_space
from netbudget.train import FitConfig, evaluate, fit
from netbudget.zoo import build_model


@pytest.fixture(scope="module")
def trained():
    data = load_dataset("digits", calibration_size=600)
    torch.manual_seed(0)
    model = build_model("vgg", input_size=8)
    fit(model, data, FitConfig(epochs=15), progress=False)
    space = build_space(model, (1, 8, 8), operators=("channels",))
    return data, model, space


def test_fidelities_order_on_a_heavily_pruned_network(trained) -> None:
    data, model, space = trained
    config = space.uniform(0.9)
    scores = {}
    for fidelity in ("reference", "bn", "lookahead", "agreement"):
        candidate = compress(model, space, config)
        scores[fidelity] = score(candidate, model, data.calibration, ProxyConfig(fidelity=fidelity, lookahead_steps=30))
        assert 0.0 <= scores[fidelity] <= 1.0
    # re-estimated statistics repair part of the damage; a look-ahead repairs more
    assert scores["bn"] > scores["reference"]
    assert scores["lookahead"] > scores["bn"]
    assert scores["agreement"] == pytest.approx(scores["bn"], abs=0.15)


def test_scoring_never_touches_the_original(trained) -> None:
    data, model, space = trained
    before = copy.deepcopy(model.state_dict())
    score(compress(model, space, space.uniform(0.5)), model, data.calibration, ProxyConfig(fidelity="lookahead", lookahead_steps=5))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lookahead_keeps_the_compression(trained) -> None:
    data, model, _ = trained
    space = build_space(model, (1, 8, 8), operators=("prune", "bits"))
    candidate = compress(model, space, {n: (0.7 if n.startswith("prune") else 3) for n in space.names})
    score(candidate, model, data.calibration, ProxyConfig(fidelity="lookahead", lookahead_steps=10))
    for layer in ("features.0", "features.3"):
        assert candidate.sparsity(layer) >= 0.69 and candidate.bit_width(layer) <= 3


def test_user_callable_and_helpers(trained) -> None:
    data, model, space = trained
    candidate = compress(model, space, space.uniform(0.2))
    assert score(candidate, model, data.calibration, lambda m, o, d: 0.25) == 0.25
    assert agreement(model, model, data.val) == 1.0
    copy_ = copy.deepcopy(model)
    reestimate_batchnorm_(copy_, data.calibration, batches=2)
    assert not copy_.training
    assert evaluate(copy_, data.val) > 0.8


def test_bad_proxy_config() -> None:
    with pytest.raises(InvalidArgumentError, match=r"`fidelity` must be one of \('reference', 'bn', 'lookahead', 'agreement'\)"):
        ProxyConfig(fidelity="oracle")
    with pytest.raises(InvalidArgumentError, match="`lookahead_steps` must be >= 1"):
        ProxyConfig(lookahead_steps=0)
