r"""Programs: what an optimizer computes from the gradient at each step.

A program turns the gradient ``g`` (and the weights ``w``) of *all* parameters, laid out as one
flat tensor, into the update ``U``; the optimizer then applies its momentum form. Working on one
flat tensor makes every op of the graph a single kernel, however many parameter tensors there
are (``torch._foreach_*`` would loop over them per op), which is what keeps an evolved optimizer
at about Adam's cost.

``GenomeProgram`` executes a searched genome; ``strategies._nos._registry`` defines the
discovered optimizers (Opt1–10, A1–5) and the paper's baselines as hand-written programs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from strategies._nos._ops import OpContext, binary, decay_values, unary
from strategies._nos._space import ROOT, STATEFUL, Genome

# Which raw EMA each operand needs: v (beta 0.9, of g), s (0.99, of g^2), lam (0.999, of g^3).
_NEEDS = {
    "v": {3, 13, 14, 17},
    "s": {4, 15, 18},
    "lam": {5, 16, 19},
}
_WEIGHT_OPERANDS = {8: 1e-6, 9: 1e-5, 10: 1e-4, 11: 1e-3}
_Edge = tuple[int, "np.ndarray | None"]  # an input and its decay's value at every step


@dataclass
class StepInputs:
    """One step's inputs to a program.

    Attributes:
        g: The gradient, a flat `n` tensor (or `b x n` in the batched integrity check).
        w: The weights, same shape (``None`` when the program does not read them).
        t: The step index, from 0.
        ctx: What structural/stateful ops need (dropout generator, per-segment norms).
    """

    g: Tensor
    w: Tensor | None
    t: int
    ctx: OpContext


@dataclass
class Program:
    """Base of programs. Subclasses set the fields and implement ``update``.

    Attributes:
        momentum: ``none``, ``momentum``, ``nesterov`` (the search's form:
            w += m_new - lr U) or ``nesterov-keras`` (w += beta m_new - lr U, Opt9/10's form).
        flip: Negate every ``lr * U`` term (ascent-form graphs found by the integrity check).
        needs_w: Whether ``update`` reads the weights.
        state_names: Flat state buffers ``update`` keeps (besides the momentum buffer ``m``).
        name: A readable name (the equation for genomes).
    """

    momentum: str = "none"
    flip: bool = False
    needs_w: bool = False
    state_names: tuple[str, ...] = ()
    name: str = ""
    lr_factor: Callable[[int], float] | None = field(default=None, repr=False)

    def update(self, inputs: StepInputs, state: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError


class GenomeProgram(Program):
    """Executes a genome: the EMA states it needs, its active nodes in topological order, the
    decay on each edge (precomputed for every step of the run), the stateful ops' slots.

    Args:
        genome: The update graph.
        total_steps: T, the run's length in steps (decays are functions of t / T).
    """

    def __init__(self, genome: Genome, total_steps: int) -> None:
        order = genome.active()  # raises on a cycle
        used = genome.operands_used()
        states = [k for k, ops in _NEEDS.items() if used & ops]
        states += [
            f"n{i}"
            for i in order
            if genome.node(i).arity == 1 and genome.node(i).unary in STATEFUL
        ]
        super().__init__(
            momentum=("none", "momentum", "nesterov")[genome.momentum],
            flip=genome.flip,
            needs_w=bool(used & set(_WEIGHT_OPERANDS)),
            state_names=tuple(states),
            name=genome.equation(),
        )
        self.genome = genome
        self.order = order
        self.total_steps = int(total_steps)
        self._decays: dict[tuple[int, int], np.ndarray] = {}
        for i in order:
            for e, d in enumerate(genome.node(i).decays):
                if d is not None:
                    self._decays[(i, e)] = decay_values(d, self.total_steps)
        # The graph compiled for ``update``: per active node (in order) its index, arity, op,
        # state slot, and per edge the input and the decay's values at every step (or None).
        self._plan: list[tuple[int, bool, int, str, tuple[_Edge, ...]]] = []
        for i in order:
            node = genome.node(i)
            edges = tuple((a, self._decays.get((i, e))) for e, a in enumerate(node.args))
            unary_node = node.arity == 1
            op = node.unary if unary_node else node.binary
            self._plan.append((i, unary_node, op, f"n{i}", edges))

    def decay_at(self, node: int, edge: int, t: int) -> float:
        values = self._decays[(node, edge)]
        return float(values[min(t, len(values) - 1)])

    def update(self, inputs: StepInputs, state: dict[str, Tensor]) -> Tensor:
        update_emas(inputs.g, state)
        t, ctx = inputs.t, inputs.ctx
        cache: dict[int, Tensor] = {}  # operands (computed once per step) and node outputs
        for i, unary_node, op, slot, edges in self._plan:
            args = []
            for a, decay in edges:
                x = cache.get(a)
                if x is None:  # an operand: nodes come before the nodes that read them
                    x = cache[a] = operand(a, inputs, state)
                if decay is not None:
                    x = x * float(decay[min(t, len(decay) - 1)])
                args.append(x)
            if unary_node:
                cache[i] = unary(op, args[0], state.get(slot), ctx)
            else:
                cache[i] = binary(op, args[0], args[1])
        return cache[ROOT]


def update_emas(g: Tensor, state: dict[str, Tensor]) -> None:
    """Advance the raw EMAs the program keeps: v (0.9, g), s (0.99, g^2), lam (0.999, g^3)."""
    if "v" in state:
        state["v"].mul_(0.9).add_(g, alpha=0.1)
    if "s" in state:
        state["s"].mul_(0.99).addcmul_(g, g, value=0.01)
    if "lam" in state:
        state["lam"].mul_(0.999).add_(g * g * g, alpha=0.001)


def operand(i: int, inputs: StepInputs, state: dict[str, Tensor]) -> Tensor:
    """Operand ``i`` (0–19) at this step; EMAs are bias-corrected with ``1 - beta^(t+1)``."""
    g, t = inputs.g, inputs.t
    if i == 0:
        return g
    if i == 1:
        return g * g
    if i == 2:
        return g * g * g
    if i == 3:
        return state["v"] / (1.0 - 0.9 ** (t + 1))
    if i == 4:
        return state["s"] / (1.0 - 0.99 ** (t + 1))
    if i == 5:
        return state["lam"] / (1.0 - 0.999 ** (t + 1))
    if i == 6:
        return torch.ones_like(g)
    if i == 7:
        return torch.full_like(g, 2.0)
    if i in _WEIGHT_OPERANDS:
        assert inputs.w is not None
        return inputs.w * _WEIGHT_OPERANDS[i]
    if i == 12:
        return torch.sign(g)
    if i == 13:
        return torch.sign(state["v"])  # the sign is unchanged by bias correction
    if i == 14:
        return 0.3 * g + 0.7 * operand(3, inputs, state)
    if i == 15:
        return 0.05 * g * g + 0.95 * operand(4, inputs, state)
    if i == 16:  # the log's label said g^2; the code (and this) uses g^3
        return 0.01 * g * g * g + 0.99 * operand(5, inputs, state)
    if i == 17:  # AggMo-style mean over betas {0, 0.9, 0.999} of beta * v - g, raw v
        return (1.899 * state["v"] - 3.0 * g) / 3.0
    if i == 18:
        return (1.989 * state["s"] - 3.0 * g * g) / 3.0
    if i == 19:
        return (1.9989 * state["lam"] - 3.0 * g * g * g) / 3.0
    raise ValueError(f"unknown operand {i}")
