r"""The numbers behind NOS genomes: the 14 decay schedules, the decay ops, the update ops, the
cycled momentum coefficient and the base learning-rate schedule.

Schedules and decay functions are scalar functions of the step :math:`t \in \{0..T-1\}`,
evaluated with numpy on whole arrays of steps (a run precomputes them once). Update ops act on
tensors. ``EPS = 1e-7`` is Keras's epsilon, as in the authors' code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import special
from torch import Tensor

from strategies._nos._space import Decay, DecayNode, H

EPS = 1e-7

# =============================================================================================
# The 14 schedules a1..a14 (index 0..13): p = t / T, c = (2t mod T) / T
# =============================================================================================


def schedules(t: np.ndarray, total: int) -> np.ndarray:
    """All 14 schedules at the steps ``t``: a `14 x len(t)` array.

    ``a14`` is the search code's ``0.95 - a13`` (in [0, 0.95]); ``finalOptimizers.py``'s other
    definition is used only by the LR3 schedule (see ``strategies._nos._registry``).
    """
    t = np.asarray(t, dtype=np.float64)
    p = t / total
    c = np.mod(2 * t, total) / total
    z = 1.0 - (t + 1) / total
    a13 = 0.95 * z / (0.05 + 0.95 * z)
    return np.stack([
        1.0 - p,                            # a1  linear decay
        p,                                  # a2  linear increase
        0.5 * (1 + np.cos(np.pi * p)),      # a3  cosine decay
        0.5 * (1 - np.cos(np.pi * p)),      # a4  cosine increase
        0.5 * (1 + np.cos(2 * np.pi * p)),  # a5  full cosine period
        0.5 * (1 - np.cos(2 * np.pi * p)),  # a6  up, then down
        0.5 * (1 + np.cos(np.pi * c)),      # a7  cosine decay, one restart
        0.5 * (1 - np.cos(np.pi * c)),      # a8  cosine increase, one restart
        1.0 - c,                            # a9  linear decay, one restart
        c,                                  # a10 linear increase, one restart
        0.01**p,                            # a11 exponential decay to 0.01
        1.0 - 0.01**p,                      # a12 exponential increase
        a13,                                # a13 Demon
        0.95 - a13,                         # a14 increasing, 0 -> 0.95
    ])  # fmt: skip


def decay_sigmoid(x: np.ndarray) -> np.ndarray:
    """Decay op 0, the logistic sigmoid."""
    return 1.0 / (1.0 + np.exp(-x))


def decay_dsoft(x: np.ndarray) -> np.ndarray:
    """Decay op 1, ``1 / (1 + |x|)`` (the derivative of softsign)."""
    return 1.0 / (1.0 + np.abs(x))


def decay_dtanh(x: np.ndarray) -> np.ndarray:
    """Decay op 10, ``1 - tanh(x)^2`` (the derivative of tanh)."""
    return 1.0 - np.tanh(x) ** 2


DECAY_UNARY_FNS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    0: decay_sigmoid,
    1: decay_dsoft,
    2: special.erf,
    3: special.erfc,
    4: np.tanh,
    5: np.arctan,
    6: special.i1e,
    7: np.square,
    8: lambda x: np.sqrt(np.abs(x)),
    9: lambda x: x / (1.0 + np.abs(x)),
    10: decay_dtanh,
    11: lambda x: (s := 1.0 / (1.0 + np.exp(-x))) * (1.0 - s),
    12: lambda x: x,
}
DECAY_BINARY_FNS: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    0: np.add,
    1: np.subtract,
    2: np.multiply,
    3: np.maximum,
    4: np.minimum,
    5: lambda x, y: x / (y + EPS),
    6: lambda x, y: x / np.sqrt(1.0 + y**2),
}


def decay_values(decay: Decay, total: int, t: np.ndarray | None = None) -> np.ndarray:
    """The decay function at the steps ``t`` (default: every step ``0..total-1``)."""
    steps = np.arange(total) if t is None else np.asarray(t)
    a = schedules(steps, total)

    def node(n: DecayNode) -> np.ndarray:
        args = [
            node(decay.hidden) if i == H and decay.hidden is not None else a[i] for i in n.args
        ]
        if n.arity == 1:
            return np.asarray(DECAY_UNARY_FNS[n.op](args[0]), dtype=np.float64)
        return np.asarray(DECAY_BINARY_FNS[n.op](args[0], args[1]), dtype=np.float64)

    with np.errstate(all="ignore"):
        return node(decay.root)


def decay_is_valid(decay: Decay) -> bool:
    """The search's validity test: on ``T = 100`` every value lies in [0, 1] (and is finite)."""
    return values_are_valid(decay_values(decay, 100))


def values_are_valid(values: np.ndarray) -> bool:
    """``decay_is_valid`` on values already computed (``decay_values(decay, 100)``)."""
    return bool(np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0)


# =============================================================================================
# Learning rate and momentum over a run (section 3 of the spec)
# =============================================================================================


def base_lr(t: np.ndarray, total: int, warmup: int, hold: int = 0) -> np.ndarray:
    r"""The NOS base schedule as a multiplier of the peak lr: linear warm-up :math:`t/W`, hold
    at 1, then cosine :math:`\tfrac12(1+\cos(\pi (t-W-H)/(T-W-H)))`. At :math:`t = 0` it is 0."""
    t = np.asarray(t, dtype=np.float64)
    out = np.ones_like(t)
    if warmup > 0:
        out = np.where(t < warmup, t / warmup, out)
    rest = max(total - warmup - hold, 1)
    cos = 0.5 * (1 + np.cos(np.pi * np.clip((t - warmup - hold) / rest, 0.0, 1.0)))
    return np.where(t >= warmup + hold, cos, out)


def cycled_beta(t: np.ndarray, total: int, warmup: int, hold: int = 0) -> np.ndarray:
    """The momentum coefficient of the search ("non-static" mode): linear 0.95 -> 0.85 over the
    warm-up, 0.85 during the hold, linear 0.85 -> 0.95 over the rest."""
    t = np.asarray(t, dtype=np.float64)
    down = 0.95 - 0.10 * np.clip(t / max(warmup, 1), 0.0, 1.0)
    rest = max(total - warmup - hold, 1)
    up = 0.85 + 0.10 * np.clip((t - warmup - hold) / rest, 0.0, 1.0)
    out = np.where(t < warmup, down, 0.85)
    return np.where(t >= warmup + hold, up, out)


# =============================================================================================
# Update ops on tensors
# =============================================================================================


class OpContext:
    """What stateful and structural update ops need at one step.

    Attributes:
        t: The step index (from 0).
        generator: The random stream of the dropout ops.
        segment_norm: Maps a tensor to its per-segment L2 norms broadcast back to its shape
            (segments are parameter tensors in an optimizer, rows in the batched integrity
            check): what clip-by-norm rescales by.
    """

    def __init__(
        self,
        t: int,
        generator: torch.Generator | None,
        segment_norm: Callable[[Tensor], Tensor],
    ) -> None:
        self.t = t
        self.generator = generator
        self.segment_norm = segment_norm


def unary(op: int, x: Tensor, state: Tensor | None, ctx: OpContext) -> Tensor:
    """Unary update op ``op`` of ``x``; stateful ops (22–24) update ``state`` in place.

    Bug fixes against the authors' code (``docs/nos-search-space.md`` §1.3), each a choice:

    * 22 ``expMovAvg``: ``n <- 0.95 n + 0.05 x``, output ``n / (1 - 0.95^(t+1))``: the code
      divided by ``1 - 0.95^k`` with ``k`` stuck at 0 (a division by zero: every candidate with
      this op failed).
    * 23 ``deltaChange``: output ``x_t - x_{t-1}`` (with ``x_{-1} = 0``), the evident intent;
      the code subtracted the previous *output*.
    * 24 ``MaxValue``: the running elementwise max, including the initial 0, as coded.
    """
    if op == -1:
        return x
    if op == 0:
        return -x
    if op == 1:
        return torch.log(x.abs() + EPS)
    if op == 2:
        return x.abs().sqrt()
    if op == 3:
        return x.exp()
    if op == 4:
        return x.abs()
    if op == 5:
        return torch.sigmoid(x)
    if op == 6:
        return 1.0 / (1.0 + x.abs())
    if op == 7:
        return torch.log(torch.exp(x).add(1.0).abs() + EPS)
    if op == 8:
        return torch.special.erf(x)
    if op == 9:
        return torch.special.erfc(x)
    if op == 10:
        return torch.asinh(x)
    if op == 11:
        return torch.tanh(x)
    if op == 12:
        return torch.atan(x)
    if op == 13:
        return 1.0 / (x + EPS)
    if op == 14:
        return torch.special.i1e(x)
    if op == 15:
        return x.clamp_min(0.0)
    if op == 16:
        return x.clamp_max(0.0)
    if op in (17, 18, 19):
        rate = {17: 0.5, 18: 0.3, 19: 0.1}[op]
        keep = torch.rand(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
        return torch.where(keep >= rate, x / (1.0 - rate), torch.zeros_like(x))
    if op == 20:
        norm = ctx.segment_norm(x)
        return x * torch.clamp(1.0 / (norm + 1e-12), max=1.0)
    if op == 21:
        return softsign(x)
    if state is None:
        raise ValueError(f"the stateful op {op} needs a state slot")
    if op == 22:
        state.mul_(0.95).add_(x, alpha=0.05)
        return state / (1.0 - 0.95 ** (ctx.t + 1))
    if op == 23:
        out = x - state
        state.copy_(x)
        return out
    if op == 24:
        torch.maximum(state, x, out=state)
        return state.clone()
    raise ValueError(f"unknown unary op {op}")


def softsign(x: Tensor) -> Tensor:
    """Update op 21, ``x / (1 + |x|)``."""
    return x / (1.0 + x.abs())


def binary(op: int, x: Tensor, y: Tensor) -> Tensor:
    """Binary update op ``op`` of ``x`` and ``y``."""
    if op == 0:
        return x + y
    if op == 1:
        return x - y
    if op == 2:
        return x * y
    if op == 3:
        return torch.maximum(x, y)
    if op == 4:
        return torch.minimum(x, y)
    if op == 5:
        return x / (y + EPS)
    if op == 6:
        return x / torch.sqrt(1.0 + y * y)
    if op == 7:
        bound = y.abs()
        return torch.minimum(torch.maximum(x, -bound), bound)
    if op == 8:
        return 0.95 * x + 0.05 * y
    if op == 9:
        return x.abs().pow(y)
    raise ValueError(f"unknown binary op {op}")
