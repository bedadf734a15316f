"""CheckAccuracyTrend (Hyperdyn's Algorithm 5): the probabilistic wait-and-watch test."""

from __future__ import annotations

import math
from collections.abc import Sequence


def keep_log_probability(
    accuracies: Sequence[float],
    *,
    window: int,
    temperature: float,
    offset: float,
    unit: str = "percent",
) -> float:
    r"""The log of the probability that CheckAccuracyTrend keeps the current hyperparameters.

    With :math:`y_l` the validation accuracy of the kept weights after epoch :math:`l`
    (:math:`l = 0..\tau`), the test keeps the current :math:`\eta` iff

    .. math::
        \exp\bigl((y_\tau - y_{\tau-\Delta}) / T - b\bigr) > u, \qquad u \sim U[0, 1],

    so it keeps with probability :math:`p = \min(1, \exp((y_\tau - y_{\tau-\Delta})/T - b))`.
    With fewer than :math:`\Delta` earlier epochs the oldest one is used. :math:`b = \infty`
    never keeps (the greedy "epoch-based BO").

    Args:
        accuracies: :math:`y_0, ..., y_\tau` as fractions in [0, 1].
        window: :math:`\Delta`, >= 1.
        temperature: :math:`T`, > 0, in ``unit``.
        offset: :math:`b` >= 0 (``inf`` allowed).
        unit: ``"percent"`` (accuracy differences in percentage points, so the paper's
            :math:`T = 1` means one point) or ``"fraction"``.

    Returns:
        :math:`\log p` (``-inf`` when :math:`b = \infty`); at most 0.

    Example:
        >>> lp = keep_log_probability([0.80, 0.81, 0.79], window=4, temperature=1.0, offset=0.01)
        >>> round(math.exp(lp), 4)  # accuracy fell 1 point: keep with probability e^(-1.01)
        0.3642
    """
    if not accuracies:
        raise ValueError("keep_log_probability needs at least one accuracy.")
    tau = len(accuracies) - 1
    ref = max(0, tau - window)
    scale = 100.0 if unit == "percent" else 1.0
    if math.isinf(offset):
        return -math.inf
    delta = (accuracies[tau] - accuracies[ref]) * scale
    return min(0.0, delta / temperature - offset)


def check_accuracy_trend(log_p: float, u: float) -> bool:
    """Algorithm 5's test: keep iff ``exp(log_p_unclipped) > u``; ``log_p`` as returned by
    ``keep_log_probability`` (clipping at 0 does not change the outcome since ``u < 1``)."""
    return u < 1.0 and (log_p > math.log(u) if u > 0 else log_p > -math.inf)
