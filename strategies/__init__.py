"""The strategies: each decides the learning rate while one shared trainer trains.

Every strategy is a class with a ``name`` (its command-line name), a validated ``config``
dataclass and a ``run(trainer, budget)`` method (``hpo.Strategy``).
"""

from __future__ import annotations

from strategies._constant import Constant, ConstantConfig
from strategies._registry import STRATEGIES, make_strategy
from strategies._schedule import Schedule, ScheduleConfig

__all__ = [
    "Constant",
    "ConstantConfig",
    "STRATEGIES",
    "Schedule",
    "ScheduleConfig",
    "make_strategy",
]
