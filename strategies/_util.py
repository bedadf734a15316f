"""Small helpers the strategies share."""

from __future__ import annotations

import math
from collections.abc import Mapping


def finite_or_worst(x: float) -> float:
    """``x``, or ``-inf`` when it is not finite (a NaN or diverged score ranks last).

    Example:
        >>> finite_or_worst(0.5), finite_or_worst(float("nan"))
        (0.5, -inf)
    """
    return x if math.isfinite(x) else -math.inf


def format_hyperparameters(hp: Mapping[str, float]) -> str:
    """``name value, ...`` with 3 significant digits, for decision texts.

    Example:
        >>> format_hyperparameters({"lr": 0.012345, "momentum": 0.9})
        'lr 0.0123, momentum 0.9'
    """
    return ", ".join(f"{k} {v:.3g}" for k, v in hp.items())
