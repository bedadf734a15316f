"""The strategies by their command-line names."""

from __future__ import annotations

from typing import Any

from strategies._constant import Constant
from strategies._pbt import PBT
from strategies._random_search import RandomSearch
from strategies._schedule import Schedule
from strategies._static import Static

STRATEGIES: dict[str, type[Any]] = {
    cls.name: cls for cls in (Constant, Schedule, Static, RandomSearch, PBT)
}


def make_strategy(name: str, **options: Any) -> Any:
    """Build a registered strategy by name, its config from ``options``.

    Raises:
        ValueError: Unknown ``name`` (the message lists the known ones) or a bad option value.
        TypeError: An option the strategy's config does not have.

    Example:
        >>> make_strategy("schedule", kind="step", lr=0.1).config.milestones
        (0.3, 0.7)
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; known strategies: {', '.join(sorted(STRATEGIES))}."
        )
    return STRATEGIES[name](**options)
