"""The integrity check: a cheap filter of degenerate optimizers before any training."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from strategies._nos._ops import OpContext, base_lr, cycled_beta, decay_is_valid
from strategies._nos._program import GenomeProgram, StepInputs
from strategies._nos._space import Genome

SHIFT = (0.5, 1.5, -0.3, -1.2, 0.75)  # b of the shifted sphere
START = (1.1, 0.9, 1.1, 0.9, 1.0)  # x0; f(x0) = 7.1525
LR_LADDER = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
ITERATIONS = 35
WARMUP = 6
THRESHOLD = 3.5  # about half of f(x0)


@dataclass(frozen=True)
class IntegrityResult:
    """The outcome of ``integrity_check``.

    Attributes:
        passed: Some lr brought the sphere under the threshold (possibly with ``flip``).
        flip: The pass needed the negated (ascent-form) update.
        losses: The final loss at each lr of the ladder, of the last sweep run.
        reason: Why it failed (empty when it passed).
    """

    passed: bool
    flip: bool
    losses: tuple[float, ...]
    reason: str = ""


def integrity_check(genome: Genome) -> IntegrityResult:
    r"""Run the candidate on the 5-D shifted sphere :math:`f(x) = \sum_i (x_i - b_i)^2` from
    ``START``, at every lr of the ladder 1 .. 1e-5 at once (one batched `6 x 5` computation), for
    35 iterations with the search's settings (T = 35, W = 6, cycled momentum, decays on). It
    passes if, for some lr, the loss at the last iteration (after 34 updates) is below 3.5.
    Otherwise the sweep is repeated with the update negated (``flip``). Decay functions must stay
    in [0, 1] (checked on T = 100). NaNs and errors mean rejection.

    Returns:
        The result; ``passed`` with ``flip=True`` means the genome must be used flipped.

    Example:
        >>> from strategies.nos import named_genome
        >>> integrity_check(named_genome("adam")).passed
        True
    """
    for d in genome.decays_used():
        if not decay_is_valid(d):
            return IntegrityResult(False, False, (), "a decay function leaves [0, 1]")
    losses: tuple[float, ...] = ()
    for flip in (False, True):
        try:
            final = sphere_losses(replace(genome, flip=flip))
        except (RuntimeError, ValueError, ZeroDivisionError, OverflowError) as err:
            return IntegrityResult(False, flip, (), f"{type(err).__name__}: {err}")
        losses = tuple(float(v) for v in final)
        if any(math.isfinite(v) and v < THRESHOLD for v in losses):
            return IntegrityResult(True, flip, losses)
    return IntegrityResult(False, True, losses, "no lr brought the sphere under 3.5")


def sphere_losses(genome: Genome) -> Tensor:
    """The sphere loss after 34 updates at each lr of the ladder: a `6` tensor."""
    program = GenomeProgram(genome, ITERATIONS)
    b = torch.tensor(SHIFT, dtype=torch.float64)
    x = torch.tensor(START, dtype=torch.float64).repeat(len(LR_LADDER), 1)  # `6 x 5`
    lr = torch.tensor(LR_LADDER, dtype=torch.float64).unsqueeze(-1)  # `6 x 1`
    steps = np.arange(ITERATIONS)
    base = base_lr(steps, ITERATIONS, WARMUP)
    betas = cycled_beta(steps, ITERATIONS, WARMUP)
    state = {name: torch.zeros_like(x) for name in program.state_names}
    m = torch.zeros_like(x)
    generator = torch.Generator().manual_seed(0)

    def row_norm(v: Tensor) -> Tensor:
        return v.norm(dim=-1, keepdim=True).expand_as(v)

    sign = -1.0 if program.flip else 1.0
    with torch.no_grad():
        for t in range(ITERATIONS):
            loss = ((x - b) ** 2).sum(-1)
            if t == ITERATIONS - 1:
                return loss
            g = 2.0 * (x - b)
            u = program.update(StepInputs(g, x, t, OpContext(t, generator, row_norm)), state)
            lr_t = sign * lr * float(base[t])
            beta = float(betas[t])
            if program.momentum == "none":
                x = x - lr_t * u
            else:
                m = beta * m - lr_t * u
                x = x + m if program.momentum == "momentum" else x + m - lr_t * u
    raise AssertionError("unreachable")  # pragma: no cover
