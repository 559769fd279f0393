"""The compression pipeline: ``compress(model, data, constraints) -> CompressionResult``."""

from __future__ import annotations

from netbudget.pipeline.config import RunConfig, default_operators
from netbudget.pipeline.cost import CostModel
from netbudget.pipeline.run import CompressionResult, compress, load, resume

__all__ = ["CompressionResult", "CostModel", "RunConfig", "compress", "default_operators", "load", "resume"]
