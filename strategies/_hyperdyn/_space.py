"""Hyperdyn's search space: hyperparameter values <-> points of the unit cube, and widening
the lr range when a winning suggestion sits on one of its bounds."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: A search space: one ``(low, high, log-scale)`` per tuned hyperparameter, lr first.
Space = list[tuple[float, float, bool]]
EDGE = 0.01  # a suggestion this close to a bound of the unit cube is "on the bound"


def decode(x: Sequence[float], space: Space, names: Sequence[str]) -> dict[str, float]:
    """Hyperparameter values of a point of the unit cube (log-scale dimensions in log).

    Example:
        >>> hp = decode([0.5, 0.5], [(1e-3, 1e-1, True), (0.0, 0.9, False)], ["lr", "momentum"])
        >>> {k: round(v, 6) for k, v in hp.items()}
        {'lr': 0.01, 'momentum': 0.45}
    """
    out = {}
    for name, xi, (lo, hi, log) in zip(names, x, space):
        xi = min(max(float(xi), 0.0), 1.0)
        if log:
            value = math.exp(math.log(lo) + xi * (math.log(hi) - math.log(lo)))
        else:
            value = lo + xi * (hi - lo)
        out[name] = min(max(float(value), lo), hi)  # exact at the bounds
    return out


def encode(values: dict[str, float], space: Space, names: Sequence[str]) -> list[float]:
    """The point of the unit cube of hyperparameter values (``decode``'s inverse)."""
    out = []
    for name, (lo, hi, log) in zip(names, space):
        v = values[name]
        if log:
            out.append((math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)))
        else:
            out.append((v - lo) / (hi - lo))
    return out


def widen(space: Space, x_lr: float, widened: list[int], *, factor: float, limit: int) -> str:
    """Move the lr range's bound out by ``factor`` when the winning suggestion's lr coordinate
    ``x_lr`` sat on it (``widened`` counts the moves per side, at most ``limit``); return what
    was done, for the decision's text ("" when nothing was).

    Example:
        >>> space, count = [(1e-3, 1e-1, True)], [0, 0]
        >>> widen(space, 1.0, count, factor=10.0, limit=1)
        '; it sat on the upper bound: lr range widened to [0.001, 1]'
        >>> widen(space, 1.0, count, factor=10.0, limit=1), space
        ('', [(0.001, 1.0, True)])
    """
    lo, hi, log = space[0]
    if x_lr <= EDGE and widened[0] < limit:
        widened[0] += 1
        lo, side = lo / factor, "lower"
    elif x_lr >= 1.0 - EDGE and widened[1] < limit:
        widened[1] += 1
        hi, side = hi * factor, "upper"
    else:
        return ""
    space[0] = (lo, hi, log)
    return f"; it sat on the {side} bound: lr range widened to [{lo:.3g}, {hi:.3g}]"
