"""Test helpers for strategy authors: ``boring_task`` (classification) and
``regression_task`` (a user's own parts, a minimised metric), ``StrategyTestSuite`` and
``CountAllocations``.

``StrategyTestSuite`` needs pytest; it is imported on first use so that ``import hpo`` does not.
"""

from __future__ import annotations

from typing import Any

from hpo.testing._allocations import CountAllocations
from hpo.testing._tasks import boring_task, regression_task

__all__ = ["CountAllocations", "StrategyTestSuite", "boring_task", "regression_task"]


def __getattr__(name: str) -> Any:
    if name == "StrategyTestSuite":
        from hpo.testing._suite import StrategyTestSuite

        return StrategyTestSuite
    raise AttributeError(f"module 'hpo.testing' has no attribute {name!r}")
