"""``StepUndo``: buffers that make a trial step undoable exactly (SGD-SA's rejected moves)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from trainers import Trainer


class StepUndo:
    """Buffers allocated once per run that make a trial step undoable exactly.

    ``save_buffers`` / ``save_weights`` copy BatchNorm buffers, parameters and optimizer state
    into them; ``restore`` copies them back (``torch._foreach_copy_``: no allocation per step).
    The optimizer state is laid out lazily, at the first step that has any (torch creates
    momentum/Adam buffers on the first ``step()``), and laid out again when the optimizer's
    state mapping is another one (a new optimizer, ``load_state_dict``) or the number of
    parameters with state changes; torch's optimizers update their state tensors in place, so
    in between nothing is walked per step.
    """

    def __init__(self, trainer: Trainer, *, own_momentum: bool) -> None:
        self.trainer = trainer
        self.params = [p for p in trainer.model.parameters()]
        self.buffers = [b for b in trainer.model.buffers()]
        with torch.no_grad():
            self.param_copy = [p.detach().clone() for p in self.params]
            self.buffer_copy = [b.clone() for b in self.buffers]
            self.trained_copy = [b.clone() for b in self.buffers]
        self.own_momentum = own_momentum
        if own_momentum:
            self.velocity = [torch.zeros_like(p) for p in self.params]
            self.velocity_copy = [torch.zeros_like(p) for p in self.params]
        self.state: list[Tensor] = []
        self.state_copy: list[Tensor] = []
        self.group_copy: list[dict[str, object]] = []
        self._state_ids: tuple[int, ...] = ()
        # the optimizer's state mapping at the last layout, and how many parameters had state
        self._laid_out_of: object = None
        self._laid_out_count = 0

    def state_dict(self) -> dict[str, list[Tensor]]:
        """SGD-SA's own momentum buffer (``own_momentum``), the only state that outlives a
        step; empty otherwise."""
        return {"velocity": list(self.velocity)} if self.own_momentum else {}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, list[Tensor]]) -> None:
        """Continue from a ``state_dict()``."""
        if self.own_momentum:
            torch._foreach_copy_(self.velocity, state["velocity"])

    @torch.no_grad()
    def save_buffers(self) -> None:
        if self.buffers:
            torch._foreach_copy_(self.buffer_copy, self.buffers)

    @torch.no_grad()
    def save_trained_buffers(self) -> None:
        if self.buffers:
            torch._foreach_copy_(self.trained_copy, self.buffers)

    @torch.no_grad()
    def restore_trained_buffers(self) -> None:
        if self.buffers:
            torch._foreach_copy_(self.buffers, self.trained_copy)

    @torch.no_grad()
    def save_weights(self) -> None:
        torch._foreach_copy_(self.param_copy, self.params)
        if self.own_momentum:
            torch._foreach_copy_(self.velocity_copy, self.velocity)
        self._layout_state()
        if self.state:
            torch._foreach_copy_(self.state_copy, self.state)
        # the scalars some optimizers step in their param groups (Schedule-Free's step count
        # and weight sum, Prodigy's and D-Adaptation's d): undone with the tensors
        self.group_copy = [
            {k: v for k, v in g.items() if k != "params" and not isinstance(v, Tensor)}
            for g in self.trainer.optimizer.param_groups
        ]

    @torch.no_grad()
    def restore(self) -> None:
        torch._foreach_copy_(self.params, self.param_copy)
        if self.buffers:
            torch._foreach_copy_(self.buffers, self.buffer_copy)
        if self.own_momentum:
            torch._foreach_copy_(self.velocity, self.velocity_copy)
        if self.state:
            torch._foreach_copy_(self.state, self.state_copy)
        for group, saved in zip(self.trainer.optimizer.param_groups, self.group_copy):
            group.update(saved)

    @torch.no_grad()
    def momentum_step(self, lr: float, kind: str, mu: float) -> None:
        """The trial step of an (lr, momentum type) move, with SGD-SA's own buffer ``v``:
        none: w -= lr g; momentum: v = mu v + g, w -= lr v; nesterov: v = mu v + g,
        w -= lr (g + mu v)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if kind == "none":
            torch._foreach_add_(self.params, grads, alpha=-lr)
            return
        torch._foreach_mul_(self.velocity, mu)
        torch._foreach_add_(self.velocity, grads)
        if kind == "momentum":
            torch._foreach_add_(self.params, self.velocity, alpha=-lr)
        else:
            torch._foreach_add_(self.params, grads, alpha=-lr)
            torch._foreach_add_(self.params, self.velocity, alpha=-lr * mu)

    def _layout_state(self) -> None:
        if self.own_momentum:
            return
        opt_state = self.trainer.optimizer.state
        if opt_state is self._laid_out_of and len(opt_state) == self._laid_out_count:
            return  # the same state tensors as last time, updated in place
        self._laid_out_of, self._laid_out_count = opt_state, len(opt_state)
        tensors = self.trainer.optimizer_state_tensors()
        ids = tuple(id(t) for t in tensors)
        if ids != self._state_ids:  # first step with state, or a new optimizer
            self.state = tensors
            self.state_copy = [t.clone() for t in tensors]
            self._state_ids = ids
