"""Exception hierarchy: one root, subclasses that also derive from the matching builtin."""

from __future__ import annotations

__all__ = [
    "DatasetError",
    "InvalidArgumentError",
    "InvalidConstraintError",
    "NetbudgetError",
    "UnknownNameError",
    "UnreachableBudgetError",
]


class NetbudgetError(Exception):
    """Root of every error raised by netbudget."""


class DatasetError(NetbudgetError, ValueError):
    """A dataset could not be found or read; the message names the file and the fix."""


class InvalidArgumentError(NetbudgetError, ValueError):
    """An argument is out of range or of the wrong form; the message quotes the value."""


class InvalidConstraintError(NetbudgetError, ValueError):
    """A budget string or entry could not be parsed or is not supported."""


class UnknownNameError(NetbudgetError, KeyError):
    """A registry lookup (model, dataset, operator, sampler) used an unknown name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class UnreachableBudgetError(NetbudgetError, RuntimeError):
    """Even the most aggressive configuration of the search space misses the budget."""
