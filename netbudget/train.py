"""Training and evaluation: ``fit`` with SGD or AdamW and a cosine schedule, ``evaluate``."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from netbudget.compress.quantize import snap
from netbudget.data import Dataset, Split
from netbudget.exceptions import InvalidArgumentError
from netbudget.progress import ProgressBar

if TYPE_CHECKING:
    from netbudget.compress.core import CompressedModel

__all__ = ["FitConfig", "FitResult", "average_weights", "default_epochs", "evaluate", "fine_tune", "fit"]

_OPTIMIZERS = ("sgd", "adamw")
_DEFAULT_LR = {"sgd": 0.05, "adamw": 2e-3}
_DEFAULT_EPOCHS = {"digits": 30, "mnist5k": 15, "fashion-mnist": 8}


def default_epochs(dataset: str) -> int:
    """Epochs that train every zoo network to its target accuracy on ``dataset``."""
    return _DEFAULT_EPOCHS.get(str(dataset), 10)


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """How to train.

    Attributes:
        epochs: passes over the training split (> 0).
        batch_size: samples per optimiser step.
        optimizer: ``sgd`` (Nesterov momentum 0.9) or ``adamw``.
        lr: peak learning rate; ``None`` picks 0.05 for SGD and 2e-3 for AdamW.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay.
        seed: seeds the initial shuffle and dropout: the same seed gives the same weights.
        max_steps: stop after this many optimiser steps (the cosine schedule still spans
            ``epochs``); ``None`` runs every epoch to the end.
        samples_per_epoch: training samples per epoch (rounded up to whole batches; each
            epoch draws them from a fresh shuffle of the split), and the cosine schedule
            spans these shorter epochs, so a short fine-tune still anneals its learning rate
            to zero; ``None``: the whole split.
        label_smoothing: label smoothing of the cross-entropy loss, in [0, 1).
        distill_weight: weight of the distillation term when a teacher is given, in [0, 1]
            (the cross-entropy gets ``1 - distill_weight``).
        distill_temperature: softmax temperature of distillation (> 0).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float = 5e-4
    seed: int = 0
    max_steps: int | None = None
    samples_per_epoch: int | None = None
    label_smoothing: float = 0.0
    distill_weight: float = 0.5
    distill_temperature: float = 4.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InvalidArgumentError(f"`epochs` must be >= 1, but got epochs={self.epochs}.")
        if self.batch_size < 1:
            raise InvalidArgumentError(f"`batch_size` must be >= 1, but got batch_size={self.batch_size}.")
        if self.optimizer not in _OPTIMIZERS:
            raise InvalidArgumentError(
                f"`optimizer` must be one of {_OPTIMIZERS}, but got optimizer={self.optimizer!r}."
            )
        if self.lr is not None and not self.lr > 0:
            raise InvalidArgumentError(f"`lr` must be > 0, but got lr={self.lr}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidArgumentError(f"`max_steps` must be >= 1 or None, but got max_steps={self.max_steps}.")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise InvalidArgumentError(
                f"`samples_per_epoch` must be >= 1 or None, but got samples_per_epoch={self.samples_per_epoch}."
            )
        if not 0.0 <= self.distill_weight <= 1.0:
            raise InvalidArgumentError(f"`distill_weight` must be in [0, 1], but got distill_weight={self.distill_weight}.")
        if not self.distill_temperature > 0:
            raise InvalidArgumentError(
                f"`distill_temperature` must be > 0, but got distill_temperature={self.distill_temperature}."
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidArgumentError(
                f"`label_smoothing` must be in [0, 1), but got label_smoothing={self.label_smoothing}."
            )


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` did: mean training loss per epoch, optimiser steps and seconds."""

    epoch_losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


StepHook = Callable[[nn.Module], None]


def fit(
    model: nn.Module,
    data: Dataset | Split,
    config: FitConfig | None = None,
    *,
    progress: bool = True,
    after_step: StepHook | None = None,
    teacher: nn.Module | None = None,
) -> FitResult:
    """Train ``model`` in place on the training split of ``data``.

    Args:
        model: the network; trained in place (hence no copy is returned).
        data: a ``Dataset`` (its ``train`` split is used) or a single ``Split``.
        config: training settings; default ``FitConfig()``.
        progress: show a progress bar with the running loss.
        after_step: called with the model after every optimiser step.
        teacher: a network to distil from (e.g. the uncompressed original); its logits,
            softened by ``config.distill_temperature``, are matched with weight
            ``config.distill_weight``.

    Returns:
        The loss history, number of steps and wall-clock seconds.
    """
    config = config or FitConfig()
    split = data.train if isinstance(data, Dataset) else data
    if len(split) == 0:
        raise InvalidArgumentError("Cannot fit on an empty split.")
    torch.manual_seed(config.seed)
    loader = split.loader(config.batch_size, shuffle=True, seed=config.seed)
    steps_per_epoch = len(loader)
    if config.samples_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, math.ceil(config.samples_per_epoch / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    lr = config.lr if config.lr is not None else _DEFAULT_LR[config.optimizer]
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    schedule_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, schedule_steps) / schedule_steps))
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    losses: list[float] = []
    step = 0
    start = time.perf_counter()
    model.train()
    with ProgressBar("train", total_steps, enabled=progress) as bar:
        for epoch in range(config.epochs):
            running, seen = 0.0, 0
            for batch, (x, y) in enumerate(loader):
                if batch == steps_per_epoch:
                    break
                optimizer.zero_grad(set_to_none=True)
                logits = model(x)
                loss = loss_fn(logits, y)
                if teacher is not None:
                    loss = (1 - config.distill_weight) * loss + config.distill_weight * _distillation(
                        logits, teacher, x, config.distill_temperature
                    )
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"Training diverged at step {step}: loss is {loss.item()}.")
                loss.backward()
                optimizer.step()
                scheduler.step()
                if after_step is not None:
                    with torch.no_grad():
                        after_step(model)
                running += loss.item() * len(y)
                seen += len(y)
                step += 1
                bar.advance(f"epoch {epoch + 1}/{config.epochs} loss {running / seen:.4f}")
                if step >= total_steps:
                    break
            losses.append(running / max(seen, 1))
            if step >= total_steps:
                break
    model.eval()
    return FitResult(losses, step, time.perf_counter() - start)


def _distillation(logits: torch.Tensor, teacher: nn.Module, x: torch.Tensor, temperature: float) -> torch.Tensor:
    with torch.no_grad():
        target = torch.log_softmax(teacher.eval()(x) / temperature, dim=1)
    student = torch.log_softmax(logits / temperature, dim=1)
    return torch.nn.functional.kl_div(student, target, log_target=True, reduction="batchmean") * temperature**2


def fine_tune(
    compressed: CompressedModel,
    data: Dataset | Split,
    config: FitConfig | None = None,
    *,
    teacher: nn.Module | None = None,
    progress: bool = True,
) -> FitResult:
    """Fine-tune a compressed network in place, keeping its compression.

    Pruned weights stay exactly zero (their gradient is masked); quantised weights train as
    float shadows through a straight-through estimator (the forward pass sees them on their
    codebook) and are snapped back to it at the end. Structured pruning needs nothing: the
    removed channels no longer exist.

    Args:
        compressed: the result of ``netbudget.compress.compress``; its module is trained.
        data: training data (a ``Dataset``'s train split, or a ``Split``).
        config: training settings (a short run: e.g. one epoch, ``lr=0.01``).
        teacher: optional network to distil from (typically the original).
        progress: show a progress bar.
    """
    from torch.nn.utils import parametrize

    module = compressed.module
    layers = {f"{name}.weight": m for name, m in module.named_modules() if hasattr(m, "weight")}
    constrained = sorted(set(compressed.masks) | set(compressed.codebooks))
    for name in constrained:
        parametrize.register_parametrization(
            layers[name], "weight", _Constrain(compressed.masks.get(name), compressed.codebooks.get(name))
        )
    try:
        result = fit(module, data, config, progress=progress, teacher=teacher)
    finally:
        for name in constrained:
            parametrize.remove_parametrizations(layers[name], "weight", leave_parametrized=True)
        compressed.enforce_()
    return result


class _Constrain(nn.Module):
    """Weight parametrisation: mask, then straight-through quantisation onto a codebook."""

    def __init__(self, mask: torch.Tensor | None, levels: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float() if mask is not None else None)
        self.register_buffer("levels", levels)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            weight = torch.where(self.mask.bool(), weight, torch.zeros_like(weight))  # +0.0, never -0.0
        if self.levels is not None:
            weight = weight + (snap(weight, self.levels) - weight).detach()
        return weight


@torch.no_grad()
def average_weights(modules: list[nn.Module]) -> nn.Module:
    """A new module whose parameters and floating-point buffers are the element-wise mean of
    ``modules``' (one architecture; e.g. fine-tunes of one network: a "weight soup"). Integer
    buffers (batch-norm's batch counts) are the first module's. Averaged batch-norm running
    statistics describe no network: re-estimate them (``netbudget.proxy.reestimate_batchnorm_``)."""
    if not modules:
        raise InvalidArgumentError("average_weights needs at least one module, but got none.")
    states = [m.state_dict() for m in modules]
    shapes = [{k: tuple(v.shape) for k, v in s.items()} for s in states]
    if any(shape != shapes[0] for shape in shapes[1:]):
        raise InvalidArgumentError("average_weights needs modules of one architecture; their parameter shapes differ.")
    out = copy.deepcopy(modules[0])
    out.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
                         for k, v in states[0].items()})
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset | Split, *, batch_size: int = 512) -> float:
    """Return top-1 accuracy (fraction in [0, 1]) of ``model`` on a split.

    ``data`` may be a ``Split`` or a ``Dataset`` (its ``test`` split is used). The model's
    train/eval mode is restored afterwards.
    """
    split = data.test if isinstance(data, Dataset) else data
    if len(split) == 0:
        raise InvalidArgumentError("Cannot evaluate on an empty split.")
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        logits = model(split.x[start : start + batch_size])
        correct += int((logits.argmax(1) == split.y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(split)
