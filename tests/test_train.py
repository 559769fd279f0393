from __future__ import annotations

import pytest
import torch

from netbudget.data import load_dataset
from netbudget.exceptions import InvalidArgumentError
from netbudget.train import FitConfig, evaluate, fit
from netbudget.zoo import build_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_short_training_lowers_loss_and_learns(digits) -> None:
    model = build_model("vgg", input_size=8)
    before = evaluate(model, digits.val)
    result = fit(model, digits, FitConfig(epochs=4), progress=False)
    assert result.steps == 4 * 10  # 1258 samples / 128 per batch -> 10 steps per epoch
    assert result.epoch_losses[-1] < 0.5 * result.epoch_losses[0]
    after = evaluate(model, digits.val)
    assert after > before + 0.3 and after > 0.8


def test_training_is_deterministic(digits) -> None:
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_model("resnet20", input_size=8, width=0.5)
        fit(model, digits, FitConfig(epochs=1, seed=5, optimizer="adamw"), progress=True)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_max_steps_and_after_step_hook(digits) -> None:
    model = build_model("vgg", input_size=8)
    calls = []
    result = fit(model, digits.train, FitConfig(epochs=3, max_steps=7), progress=False, after_step=calls.append)
    assert result.steps == 7 and len(calls) == 7 and calls[0] is model


def test_samples_per_epoch_shortens_epochs_and_anneals_over_them(digits) -> None:
    def last_update(config: FitConfig) -> float:
        """Size of the final optimiser step relative to the first (the learning rate's decay)."""
        torch.manual_seed(0)
        model = build_model("vgg", input_size=8)
        snapshots = [torch.cat([p.detach().flatten().clone() for p in model.parameters()])]
        result = fit(model, digits.train, config, progress=False,
                     after_step=lambda m: snapshots.append(torch.cat([p.detach().flatten().clone() for p in m.parameters()])))
        assert result.steps == len(snapshots) - 1 == 9  # 3 epochs of ceil(40 / 16) = 3 batches, or max_steps
        assert len(result.epoch_losses) == (3 if config.samples_per_epoch else 1)
        first, last = (snapshots[1] - snapshots[0]).norm(), (snapshots[-1] - snapshots[-2]).norm()
        return float(last / first)

    annealed = last_update(FitConfig(epochs=3, batch_size=16, samples_per_epoch=40, seed=0))
    truncated = last_update(FitConfig(epochs=3, batch_size=16, max_steps=9, seed=0))
    assert annealed < 0.2 < truncated  # the short schedule ends near zero; the truncated one near its peak


def test_evaluate_range_and_mode_restored(digits) -> None:
    model = build_model("vgg", input_size=8).train()
    grad_enabled = []
    model.register_forward_hook(lambda module, inputs, output: grad_enabled.append(output.requires_grad))
    acc = evaluate(model, digits)
    assert 0.0 <= acc <= 1.0
    assert model.training
    assert grad_enabled and not any(grad_enabled)  # no autograd graph: evaluation runs on every candidate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"`epochs` must be >= 1, but got epochs=0"),
        ({"optimizer": "adam"}, r"`optimizer` must be one of \('sgd', 'adamw'\), but got optimizer='adam'"),
        ({"lr": -1.0}, r"`lr` must be > 0"),
        ({"max_steps": 0}, r"`max_steps` must be >= 1"),
        ({"samples_per_epoch": 0}, r"`samples_per_epoch` must be >= 1 or None, but got samples_per_epoch=0"),
        ({"label_smoothing": 1.0}, r"`label_smoothing` must be in \[0, 1\)"),
    ],
)
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        FitConfig(**kwargs)


def test_divergence_is_reported(digits) -> None:
    model = build_model("vgg", input_size=8)
    with torch.no_grad():
        model.classifier[-1].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="diverged at step 0"):
        fit(model, digits, FitConfig(epochs=1), progress=False)


def test_average_weights_is_the_element_wise_mean_and_refuses_other_architectures() -> None:
    from netbudget.train import average_weights

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)) for _ in range(3)]
    for k, net in enumerate(nets):
        net[1].num_batches_tracked.fill_(k + 5)
    mean = average_weights(nets)
    assert torch.allclose(mean[0].weight, sum(n[0].weight for n in nets) / 3)
    assert int(mean[1].num_batches_tracked) == 5  # an integer buffer: the first module's
    assert mean is not nets[0] and not torch.equal(nets[0][0].weight, mean[0].weight)
    with pytest.raises(InvalidArgumentError, match="modules of one architecture"):
        average_weights([nets[0], torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))])
    with pytest.raises(InvalidArgumentError, match="at least one module"):
        average_weights([])
