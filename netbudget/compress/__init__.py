"""Compression operators applied to a copy of a network: channels, prune, quantise."""

from __future__ import annotations

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
