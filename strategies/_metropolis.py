"""``MetropolisSampler``: propose / accept over a discrete neighbourhood, with cooling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from hpo._validation import check_range

Move = TypeVar("Move")


class MetropolisSampler(Generic[Move]):
    r"""Simulated annealing's move selection and Metropolis acceptance, reusable by any
    neighbourhood (SGD-SA's learning rates, (lr, momentum type) pairs, ...).

    ``propose()`` draws a move uniformly from ``moves``; ``accept(delta)`` accepts a worsening
    ``delta`` (new objective minus current, to minimise) with probability

    .. math::
        p = \min\bigl(1, e^{-\Delta / T}\bigr),

    so improving moves are always accepted; a non-finite ``delta`` (NaN or inf) is always
    rejected. ``cool()`` multiplies the temperature by ``cooling``; ``temperature_for`` sets a
    temperature from data instead. The sampler counts proposals, acceptances, the clipped
    probabilities, the accepted moves and the (finite) worsening deltas until
    ``reset_stats()``.

    Args:
        moves: The neighbourhood, non-empty.
        t0: The initial temperature, >= 0 (in the units of ``delta``); 0 is greedy (every
            worsening move is rejected).
        cooling: The cooling factor, in (0, 1).
        rng: The random stream of proposals and acceptance draws.

    Example:
        >>> import numpy as np
        >>> s = MetropolisSampler([0.1, 0.5], t0=1.0, cooling=0.8, rng=np.random.default_rng(0))
        >>> s.accept(-1.0), s.accept(float("nan")), round(s.probability(0.5), 4)
        (True, False, 0.6065)
        >>> s.cool(); s.temperature
        0.8
    """

    def __init__(
        self,
        moves: Sequence[Move],
        *,
        t0: float,
        cooling: float,
        rng: np.random.Generator,
    ) -> None:
        if len(moves) == 0:
            raise ValueError("MetropolisSampler.`moves` must not be empty.")
        check_range("MetropolisSampler", "t0", t0, 0.0)
        check_range(
            "MetropolisSampler", "cooling", cooling, 0.0, 1.0, low_closed=False, high_closed=False
        )
        self.moves = list(moves)
        self.temperature = float(t0)
        self.cooling = float(cooling)
        self.rng = rng
        self.reset_stats()

    def propose(self) -> Move:
        """A move drawn uniformly from the neighbourhood."""
        return self.moves[int(self.rng.integers(len(self.moves)))]

    def probability(self, delta: float) -> float:
        """:math:`\\min(1, e^{-\\Delta/T})`; 0 for a non-finite ``delta``."""
        if not math.isfinite(delta):
            return 0.0
        if delta <= 0:
            return 1.0
        if self.temperature <= 0.0:
            return 0.0
        return math.exp(-delta / self.temperature)

    def accept(self, delta: float, move: Move | None = None) -> bool:
        """Draw the Metropolis test for a worsening ``delta``; record it (with ``move``)."""
        p = self.probability(delta)
        accepted = p >= 1.0 or bool(self.rng.random() < p)
        self.proposed += 1
        self.probability_sum += p
        if not delta <= 0:  # a worsening move (or a non-finite one)
            self.worsening += 1
            self.worsening_probability_sum += p
            if math.isfinite(delta):
                self.worsening_deltas.append(delta)
        if accepted:
            self.accepted += 1
            if move is not None:
                self.accepted_moves.append(move)
        return accepted

    def cool(self) -> None:
        """Lower the temperature: :math:`T \\leftarrow \\alpha T`."""
        self.temperature *= self.cooling

    def state_dict(self) -> dict[str, Any]:
        """The temperature and the random stream's state (the counts are per ``reset_stats``
        period and not kept)."""
        return {"temperature": self.temperature, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()``."""
        self.temperature = float(state["temperature"])
        self.rng.bit_generator.state = state["rng"]

    def reset_stats(self) -> None:
        """Start counting afresh (e.g. at each epoch)."""
        self.proposed = 0
        self.accepted = 0
        self.probability_sum = 0.0
        self.worsening = 0
        self.worsening_probability_sum = 0.0
        self.accepted_moves: list[Move] = []
        self.worsening_deltas: list[float] = []

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else math.nan

    @property
    def mean_probability(self) -> float:
        """The mean acceptance probability of all proposals, clipped to 1 (SGD-SA's Fig. 3a);
        improving moves count as 1, so it cannot fall below the share of improving moves."""
        return self.probability_sum / self.proposed if self.proposed else math.nan

    @property
    def worsening_probability(self) -> float:
        """The mean acceptance probability of the worsening proposals only (Fig. 3a's caption:
        "probability of accepting worsening moves"); it falls to 0 as the temperature does."""
        return self.worsening_probability_sum / self.worsening if self.worsening else math.nan

    @property
    def worsening_share(self) -> float:
        """The share of proposals that worsened the objective."""
        return self.worsening / self.proposed if self.proposed else math.nan


def temperature_for(deltas: Sequence[float], acceptance: float) -> float:
    r"""The temperature at which worsening moves of sizes ``deltas`` are accepted with mean
    probability ``acceptance``: the :math:`T` solving

    .. math::
        rac{1}{n} \sum_i e^{-\Delta_i / T} = p,

    found by bisection on :math:`\log T` (the left side increases with :math:`T`). This is how
    SGD-SA's default temperature is set from data, whatever the loss scale and batch size.

    Args:
        deltas: Worsening deltas, each > 0 (others are ignored).
        acceptance: The mean acceptance probability wanted, in (0, 1).

    Returns:
        The temperature (in the units of the deltas); NaN when no delta is usable.

    Example:
        >>> round(temperature_for([1.0], 0.5), 6)  # e^(-1/T) = 1/2
        1.442695
        >>> t = temperature_for([0.1, 1.0, 10.0], 0.2)
        >>> round(sum(math.exp(-d / t) for d in (0.1, 1.0, 10.0)) / 3, 6)
        0.2
    """
    check_range(
        "temperature_for", "acceptance", acceptance, 0.0, 1.0, low_closed=False, high_closed=False
    )
    d = np.array([x for x in deltas if math.isfinite(x) and x > 0], dtype=float)
    if d.size == 0:
        return math.nan
    lo, hi = math.log(d.min()) - 40.0, math.log(d.max()) + 40.0
    for _ in range(100):  # the bracket is ~80 wide in log T: 2^-100 of it is exact enough
        mid = 0.5 * (lo + hi)
        if np.exp(-d / math.exp(mid)).mean() < acceptance:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))
