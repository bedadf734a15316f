"""Argument checks shared by every config in the project.

The messages follow one pattern: the owner and the field, the allowed set, then the value got::

    HyperdynConfig.`lr_min` must be in (0, inf), but got lr_min=-0.1.

``hpo._validation`` re-exports these helpers; they live here so that the trainer layer, which
depends on nothing else in the project, can use them too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def check_range(
    owner: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_closed: bool = True,
    high_closed: bool = True,
    integer: bool = False,
    allow_inf: bool = False,
) -> None:
    """Raise unless ``low <= value <= high`` (open or closed at each end).

    An infinite ``value`` is refused unless ``allow_inf`` (a field where ``inf`` means
    something, such as Hyperdyn's ``offset``): an unbounded interval ``[0, inf]`` is
    ``[0, inf)`` for a learning rate.

    Raises:
        TypeError: ``value`` is not a real number (or not an ``int`` when ``integer``).
        ValueError: ``value`` is outside the interval, infinite, or NaN.
    """
    kind = "an int" if integer else "a real number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise TypeError(
            f"{owner}.`{name}` must be {kind}, but got {name}={value!r} "
            f"of type {type(value).__name__}."
        )
    if not allow_inf:  # an unbounded end is open: infinity is not a value
        high_closed = high_closed and high != math.inf
        low_closed = low_closed and low != -math.inf
    lo_ok = value >= low if low_closed else value > low
    hi_ok = value <= high if high_closed else value < high
    if not (lo_ok and hi_ok):  # NaN fails both comparisons
        interval = (
            f"{'[' if low_closed else '('}{_fmt(low)}, {_fmt(high)}{']' if high_closed else ')'}"
        )
        raise ValueError(f"{owner}.`{name}` must be in {interval}, but got {name}={value!r}.")


def check_lr_bounds(owner: str, lr_min: Any, lr_max: Any) -> None:
    """Raise unless ``0 < lr_min < lr_max`` (each named in the message)."""
    check_range(owner, "lr_min", lr_min, 0.0, low_closed=False)
    check_range(owner, "lr_max", lr_max, 0.0, low_closed=False)
    if not lr_min < lr_max:
        raise ValueError(
            f"{owner}: `lr_min` must be < `lr_max`, but got lr_min={lr_min!r}, lr_max={lr_max!r}."
        )


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        allowed = "{" + ", ".join(repr(c) for c in choices) + "}"
        raise ValueError(f"{owner}.`{name}` must be one of {allowed}, but got {name}={value!r}.")


def check_type(owner: str, name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """Raise ``TypeError`` unless ``isinstance(value, types)``."""
    if not isinstance(value, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise TypeError(
            f"{owner}.`{name}` must be of type {names}, but got {name}={value!r} "
            f"of type {type(value).__name__}."
        )


def _fmt(x: float) -> str:
    if x == math.inf:
        return "inf"
    if x == -math.inf:
        return "-inf"
    return repr(x)
