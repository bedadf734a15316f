"""``GraphOptimizer``: a ``torch.optim.Optimizer`` that runs a NOS program every step."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from strategies._nos._ops import OpContext, cycled_beta
from strategies._nos._program import GenomeProgram, Program, StepInputs
from strategies._nos._space import Genome


class ProgramOptimizer(torch.optim.Optimizer):
    r"""Runs a ``Program`` over all parameters as one flat tensor.

    Each step: the gradients (and, if the program reads them, the weights) are copied into
    preallocated flat buffers; the program computes the update ``U`` with single-kernel ops on
    them; then, with :math:`\eta_t` the group's lr (times the program's own lr factor) and
    :math:`\beta_t` the cycled momentum coefficient:

    * none: :math:`w \leftarrow w - \eta_t U`
    * momentum: :math:`m \leftarrow \beta_t m - \eta_t U;\ w \leftarrow w + m`
    * nesterov (the search's form): :math:`m \leftarrow \beta_t m - \eta_t U;`
      :math:`w \leftarrow w + m - \eta_t U`
    * nesterov-keras (Opt9/10): :math:`m \leftarrow \beta_t m - \eta_t U;`
      :math:`w \leftarrow w + \beta_t m - \eta_t U`

    (signs flipped when ``program.flip``). The program's state (EMAs, stateful nodes) and ``m``
    live in flat buffers; ``self.state[p]`` holds per-parameter *views* of them, so snapshots,
    ``state_dict`` and ``load_state_dict`` work as for any torch optimizer.

    Args:
        params: Parameters or param groups (one group: the flat layout spans them all).
        program: What to compute.
        lr: The peak learning rate (strategies set the lr of each step).
        total_steps: T, the run's length (the momentum cycle and decays are functions of t/T).
        warmup_steps: W of the cycled momentum (default: 10 % of ``total_steps``).
        hold_steps: H of the cycled momentum.
        seed: Seeds the dropout ops' random stream.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        program: Program,
        lr: float = 1e-3,
        *,
        total_steps: int = 10_000,
        warmup_steps: int | None = None,
        hold_steps: int = 0,
        seed: int = 0,
    ) -> None:
        if not lr >= 0:
            raise ValueError(f"{type(self).__name__}: `lr` must be >= 0, but got lr={lr!r}.")
        if total_steps < 1:
            raise ValueError(f"`total_steps` must be >= 1, but got total_steps={total_steps!r}.")
        super().__init__(params, {"lr": lr})
        self.program = program
        self.total_steps = int(total_steps)
        self.warmup_steps = (
            max(1, round(0.1 * total_steps)) if warmup_steps is None else int(warmup_steps)
        )
        self.hold_steps = int(hold_steps)
        self._betas = cycled_beta(
            np.arange(self.total_steps), self.total_steps, self.warmup_steps, self.hold_steps
        )
        self._seed = seed
        # the dropout ops' stream; _build_layout moves it to the parameters' device (torch.rand
        # on CUDA needs a CUDA generator)
        self._generator = torch.Generator().manual_seed(seed)
        self._params = [p for g in self.param_groups for p in g["params"]]
        self._layout: dict[str, Any] | None = None

    # ---------------------------------------------------------------- the flat layout

    def _build_layout(self) -> dict[str, Any]:
        params = self._params
        first = params[0]
        sizes = [p.numel() for p in params]
        n = sum(sizes)

        def views(flat: Tensor) -> list[Tensor]:
            return [v.view_as(p) for v, p in zip(flat.split(sizes), params)]

        names = [*self.program.state_names]
        if self.program.momentum != "none":
            names.append("m")
        flats: dict[str, Tensor] = {}
        for name in names:
            flat = torch.zeros(n, dtype=first.dtype, device=first.device)
            old = [self.state.get(p, {}).get(name) for p in params]
            if all(isinstance(o, Tensor) for o in old):  # loaded from a state dict
                torch._foreach_copy_(views(flat), old)
            flats[name] = flat
        step = self.state.get(first, {}).get("step")
        step = (
            step.detach().clone().cpu()
            if isinstance(step, Tensor)
            else torch.zeros((), dtype=torch.float64)
        )
        flat_views = {name: views(flat) for name, flat in flats.items()}
        for i, p in enumerate(params):
            s = self.state[p]
            s["step"] = step
            for name in flats:
                s[name] = flat_views[name][i]
        dtype, device = first.dtype, first.device
        if self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self._seed)
        grad = torch.empty(n, dtype=dtype, device=device)
        u = torch.empty(n, dtype=dtype, device=device)
        w = torch.empty(n, dtype=dtype, device=device) if self.program.needs_w else None
        return {
            "flats": flats,
            "first": {name: v[0] for name, v in flat_views.items()},
            "step": step,
            "grad": grad,
            "grad_views": views(grad),
            "u": u,
            "u_views": views(u),
            "w": w,
            "w_views": views(w) if w is not None else None,
            "m_views": flat_views.get("m"),
            "segment_norm": functools.partial(
                _segment_norm, sizes=sizes, sizes_t=torch.tensor(sizes, device=device)
            ),
        }

    def _ensure_layout(self) -> dict[str, Any]:
        """The flat layout, rebuilt when ``self.state`` no longer holds its views: after
        ``load_state_dict``, or a restore that replaced state tensors (a snapshot restore that
        copies into existing tensors keeps it)."""
        layout = self._layout
        state = self.state.get(self._params[0], {})
        if (
            layout is None
            or state.get("step") is not layout["step"]
            or any(state.get(k) is not v for k, v in layout["first"].items())
        ):
            self._layout = layout = self._build_layout()
        return layout

    def state_dict(self) -> dict[str, Any]:
        # per-parameter views would each serialise the whole flat buffer: save copies
        out = super().state_dict()
        # torch's state_dict shares the per-parameter dicts with self.state: build new ones
        out["state"] = {
            key: {k: v.clone() if isinstance(v, Tensor) else v for k, v in entry.items()}
            for key, entry in out["state"].items()
        }
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._layout = None

    # ---------------------------------------------------------------- the step

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        layout = self._ensure_layout()
        params = self._params
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        torch._foreach_copy_(layout["grad_views"], grads)
        if layout["w"] is not None:
            torch._foreach_copy_(layout["w_views"], params)
        step_t = layout["step"]
        t = int(step_t.item())
        program = self.program
        inputs = StepInputs(
            g=layout["grad"],
            w=layout["w"],
            t=t,
            ctx=OpContext(t, self._generator, layout["segment_norm"]),
        )
        u = program.update(inputs, layout["flats"])
        kind = program.momentum
        if kind != "momentum" or u.dtype != layout["u"].dtype or u.shape != layout["u"].shape:
            # the per-parameter views of the flat update are read below (plain momentum reads
            # only the flat update: it uses u itself when u has the buffer's dtype and shape)
            layout["u"].copy_(u)
            u = layout["u"]
        lr = float(self.param_groups[0]["lr"])
        if program.lr_factor is not None:
            lr *= program.lr_factor(t)
        if program.flip:
            lr = -lr
        beta = float(self._betas[min(t, self.total_steps - 1)])
        if kind == "none":
            torch._foreach_add_(params, layout["u_views"], alpha=-lr)
        else:
            m = layout["flats"]["m"]
            m.mul_(beta).add_(u, alpha=-lr)
            if kind == "momentum":
                torch._foreach_add_(params, layout["m_views"])
            elif kind == "nesterov":
                torch._foreach_add_(params, layout["m_views"])
                torch._foreach_add_(params, layout["u_views"], alpha=-lr)
            else:  # nesterov-keras
                torch._foreach_add_(params, layout["m_views"], alpha=beta)
                torch._foreach_add_(params, layout["u_views"], alpha=-lr)
        step_t += 1
        return loss


class GraphOptimizer(ProgramOptimizer):
    """A ``torch.optim.Optimizer`` that executes a NOS ``Genome`` every step.

    Args:
        params: The parameters to optimize.
        genome: The update graph (with its momentum type and flip flag).
        lr: The peak learning rate.
        total_steps: T: decay functions and the momentum cycle are functions of t / T.
        warmup_steps: W of the momentum cycle (default 10 % of T).
        hold_steps: H of the momentum cycle.
        seed: Seeds the dropout ops.

    Example:
        >>> import torch
        >>> from strategies.nos import GraphOptimizer, named_genome
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = GraphOptimizer([w], named_genome("sgd"), lr=0.1, total_steps=10)
        >>> w.grad = torch.ones(3); opt.step(); w.data
        tensor([0.9000, 0.9000, 0.9000])
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        genome: Genome,
        lr: float = 1e-3,
        *,
        total_steps: int = 10_000,
        warmup_steps: int | None = None,
        hold_steps: int = 0,
        seed: int = 0,
    ) -> None:
        if not isinstance(genome, Genome):
            raise TypeError(f"`genome` must be a Genome, but got {type(genome).__name__}.")
        self.genome = genome
        super().__init__(
            params,
            GenomeProgram(genome, total_steps),
            lr,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            hold_steps=hold_steps,
            seed=seed,
        )


def _segment_norm(x: Tensor, *, sizes: list[int], sizes_t: Tensor) -> Tensor:
    """Per-parameter-tensor L2 norms of a flat tensor, broadcast back to its shape (``sizes``:
    the tensors' numels, ``sizes_t`` the same on the flat tensor's device)."""
    norms = torch.stack(torch._foreach_norm(list(x.split(sizes))))
    return norms.repeat_interleave(sizes_t)
