"""Networks from a spec string: ``zoo:NAME`` or ``package.module:factory``, plus weights."""

from __future__ import annotations

import importlib
from pathlib import Path

from torch import nn

from netbudget.data import Dataset
from netbudget.exceptions import InvalidArgumentError

__all__ = ["build_from_spec"]


def build_from_spec(
    spec: str, data: Dataset, *, weights: str | Path | None = None, width: float = 1.0, seed: int = 0
) -> nn.Module:
    """Build the network a spec names, with its trained weights.

    Args:
        spec: ``zoo:vgg`` (a zoo architecture sized for ``data``) or
            ``package.module:factory`` (a callable with no required arguments returning an
            ``nn.Module``).
        data: the dataset (input channels, size and classes of zoo networks).
        weights: state dict (.pt) to load; zoo networks without weights are trained once
            on ``data`` and cached (``netbudget.zoo.pretrained``).
        width: width multiplier of zoo networks.
        seed: training seed of zoo networks trained here.

    Raises:
        InvalidArgumentError: the spec is malformed, cannot be imported, does not return a
            module, or the weights do not fit it.
    """
    from netbudget.zoo import build_for, load_weights, pretrained

    if spec.startswith("zoo:"):
        if weights is None:
            return pretrained(spec, data.name, width=width, seed=seed)
        return load_weights(build_for(spec, data, width=width), weights)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(f"Model spec {spec!r} must be 'zoo:NAME' or 'package.module:factory'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidArgumentError(f"Cannot import module {module_name!r} of model spec {spec!r}: {error}") from error
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise InvalidArgumentError(f"Module {module_name!r} has no callable {attr!r} (model spec {spec!r}).")
    model = factory()
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"{spec!r} returned a {type(model).__name__}, not a torch.nn.Module.")
    if weights is not None:
        load_weights(model, weights)
    return model
