"""netbudget: compress a trained PyTorch network until it provably meets an operational budget."""

from __future__ import annotations

__version__ = "0.1.0"

from netbudget.exceptions import (
    DatasetError,
    InvalidArgumentError,
    InvalidConstraintError,
    NetbudgetError,
    UnknownNameError,
    UnreachableBudgetError,
)

__all__ = [
    "DatasetError",
    "InvalidArgumentError",
    "InvalidConstraintError",
    "NetbudgetError",
    "UnknownNameError",
    "UnreachableBudgetError",
    "__version__",
]
