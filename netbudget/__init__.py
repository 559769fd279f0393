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
    "CompressionResult",
    "DatasetError",
    "InvalidArgumentError",
    "InvalidConstraintError",
    "NetbudgetError",
    "RunConfig",
    "UnknownNameError",
    "UnreachableBudgetError",
    "__version__",
    "compress",
    "load",
    "resume",
]

_LAZY = {"compress": "netbudget.compress", "load": "netbudget.pipeline", "resume": "netbudget.pipeline",
         "CompressionResult": "netbudget.pipeline", "RunConfig": "netbudget.pipeline"}


def __getattr__(name: str):  # PEP 562: keep `import netbudget` free of torch and optuna
    if name not in _LAZY:
        raise AttributeError(f"module 'netbudget' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_LAZY[name])
    return module if name == "compress" else getattr(module, name)
