"""Compression operators applied to a copy of a network: channels, prune, quantise.

``netbudget.compress`` is also the pipeline's entry point: calling the package,
``netbudget.compress(model, data, constraints, ...)``, runs ``netbudget.pipeline.compress``
(the whole search); ``netbudget.compress.compress(model, space, config)`` applies one
configuration. Both names were promised to users, so the package is made callable.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from netbudget.compress.channels import kept_channels, prune_channels_
from netbudget.compress.core import (
    OPERATOR_HANDLERS,
    CompressedModel,
    compress,
    register_operator,
)
from netbudget.compress.prune import magnitude_mask
from netbudget.compress.quantize import QuantizeConfig, codebook, snap

__all__ = [
    "OPERATOR_HANDLERS",
    "CompressedModel",
    "QuantizeConfig",
    "codebook",
    "compress",
    "kept_channels",
    "magnitude_mask",
    "prune_channels_",
    "register_operator",
    "snap",
]


class _CallablePackage(types.ModuleType):
    def __call__(self, model: Any, data: Any, constraints: Any, **settings: Any) -> Any:
        """Run the compression pipeline (see ``netbudget.pipeline.compress``)."""
        from netbudget.pipeline import compress as run_pipeline

        return run_pipeline(model, data, constraints, **settings)


sys.modules[__name__].__class__ = _CallablePackage
