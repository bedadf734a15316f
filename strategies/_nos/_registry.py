r"""The discovered optimizers (Opt1–Opt10, A1–A5), the evolved lr schedules (LR1–LR9) and the
paper's baselines (QHM, PowerSign, AddSign), as ``finalOptimizers.py`` defines them
(``docs/nos-search-space.md`` §6), with the flagged bugs resolved as documented per entry.

Common terms: :math:`\hat v` (EMA of g, :math:`\beta = 0.9`) and :math:`\hat s` (EMA of
:math:`g^2`, 0.99), bias-corrected with :math:`t + 1`; :math:`q = 0.3 g + 0.7 \hat v` (QHM with
:math:`\nu = 0.7`). Unless stated, :math:`w \leftarrow w - \eta_t U`, with :math:`\eta_t` the lr the
strategy sets (NOS used warm-up + cosine: ``Schedule(kind="one-cycle")``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special
from torch import Tensor

from hpo._validation import check_range
from strategies._nos._ops import (
    EPS,
    base_lr,
    decay_dsoft,
    decay_dtanh,
    decay_sigmoid,
    schedules,
    softsign,
    unary,
)
from strategies._nos._optimizer import ProgramOptimizer
from strategies._nos._program import Program, StepInputs, operand, update_emas
from strategies._nos._space import Genome, Node
from trainers import LRSchedule

# =============================================================================================
# The lr schedules LR1..LR9: multipliers of the base warm-up + hold + cosine schedule
# =============================================================================================


def lr_multiplier(k: int, t: np.ndarray, total: int) -> np.ndarray:
    """LR``k`` (1..9) at the steps ``t`` of a run of ``total`` steps.

    LR3 uses ``finalOptimizers.py``'s a14 (``(0.95 - 0.95 z) / (0.05 + 0.95 z)``, which climbs to
    ~19): the search's a14 never appears in an LR schedule, and LR3 is reproduced as published.
    """
    a = schedules(t, total)
    a1, a2, a4, a6, a8, a10, a11, a12 = a[0], a[1], a[3], a[5], a[7], a[9], a[10], a[11]
    z = 1.0 - (np.asarray(t, dtype=np.float64) + 1) / total
    a14_final = (0.95 - 0.95 * z) / (0.05 + 0.95 * z)
    with np.errstate(all="ignore"):
        table = {
            1: lambda: special.erfc(special.erfc(a4)) / decay_dtanh(a8),
            2: lambda: special.erfc(special.erfc(a4)) / (decay_dtanh(a8) * decay_dtanh(a4)),
            3: lambda: np.arctan(a2) / (decay_dtanh(a10) * np.sqrt(decay_dsoft(a14_final))),
            4: lambda: decay_sigmoid(a2) ** 2 / decay_sigmoid(2 * (a1 / (1 + np.abs(a1)))),
            5: lambda: 1.0 / np.sqrt(special.erf(a11)),
            6: lambda: np.arctan(a2) * special.erfc(a6) / np.sqrt(decay_dsoft(a6)),
            7: lambda: 1.0 / np.sqrt(decay_dsoft(a10)),
            8: lambda: 1.0 / (np.sqrt(np.arctan(a12) / (1 + np.abs(np.arctan(a12)))) + 1e-7),
            9: lambda: np.tanh(np.maximum(a10, a6)),
        }
        if k not in table:
            raise ValueError(f"LR schedules are LR1..LR9, but got k={k!r}.")
        return np.asarray(table[k](), dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class NOSLRSchedule(LRSchedule):
    """LR``k`` of the paper on top of the base warm-up + hold + cosine schedule (the lr is
    ``lr * base(t) * LRk(t) + 1e-7``, as the authors' Keras callback; at t = 0 it is 1e-7).

    A ``trainers.LRSchedule``: ``Schedule(kind="nos-lr3")`` uses it.
    """

    k: int = 1
    warmup: float = 0.1
    hold: float = 0.0
    resolution: int = 10_000  # steps of the continuous schedule sampled per run

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("NOSLRSchedule", "k", self.k, 1, 9, integer=True)
        check_range("NOSLRSchedule", "warmup", self.warmup, 0.0, 1.0, high_closed=False)
        check_range("NOSLRSchedule", "hold", self.hold, 0.0, 1.0, high_closed=False)

    def __call__(self, epoch: float, total_epochs: float) -> float:
        n = self.resolution
        t = min(int(epoch / total_epochs * n), n - 1)
        if t < 0:  # before the run (or resolution < 1): no table entry
            return self._lr_at(t)
        table = self.__dict__.get("_table") or self._lr_table()
        return table[t]

    def _lr_table(self) -> list[float]:
        """``_lr_at`` at every step ``0..resolution-1`` (the same floats, computed at once),
        kept on the instance outside the dataclass fields: equality, hash and repr ignore it,
        and ``__getstate__`` leaves it out of the pickled state."""
        n = self.resolution
        t = np.arange(1, n)
        base = base_lr(t, n, int(self.warmup * n), int(self.hold * n))
        mult = lr_multiplier(self.k, t, n)
        with np.errstate(all="ignore"):  # steps that are never asked for must not warn
            table = [1e-7, *(self.lr * base * mult + 1e-7).tolist()]
        object.__setattr__(self, "_table", table)
        return table

    def _lr_at(self, t: int) -> float:
        """The lr at step ``t`` of the ``resolution`` steps, computed on its own."""
        if t == 0:
            return 1e-7
        n = self.resolution
        base = base_lr(np.array([t]), n, int(self.warmup * n), int(self.hold * n))[0]
        mult = lr_multiplier(self.k, np.array([t]), n)[0]
        return float(self.lr * base * mult + 1e-7)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_table"}


# =============================================================================================
# Hand-written programs
# =============================================================================================


def _a(k: int, total: int) -> Callable[[int], float]:
    """Schedule a``k`` (1-based) as a function of the step, precomputed."""
    values = schedules(np.arange(total), total)[k - 1]
    return lambda t: float(values[min(t, total - 1)])


@dataclass(frozen=True)
class _Spec:
    fn: Callable[[StepInputs, dict[str, Tensor], Callable[[str], Callable[[int], float]]], Tensor]
    momentum: str = "none"
    needs_w: bool = False
    states: tuple[str, ...] = ("v", "s")
    lr_factor: bool = False  # multiply the lr by LR1 (Opt4/5/6)
    formula: str = ""


# operand 14 is q = 0.3 g + 0.7 v hat (the search's QHM operand)


def _opt1(inp, st, a):  # noqa: ANN001, ANN202
    w5 = 1e-5 * inp.w
    s1 = (
        w5 - operand(15, inp, st)
    ).abs()  # the operand-based intent of the coded |w5 - 0.05g^2 + ...|
    return operand(14, inp, st) + softsign(torch.minimum(torch.maximum(w5, -s1), s1))


def _opt2(inp, st, a):  # noqa: ANN001, ANN202
    w5 = 1e-5 * inp.w
    s1 = w5 - operand(15, inp, st)
    return operand(14, inp, st) + softsign(w5 / torch.sqrt(1.0 + s1 * s1))


def _opt3(inp, st, a):  # noqa: ANN001, ANN202
    w5 = 1e-5 * inp.w
    l1 = w5 - operand(16, inp, st)  # lambda-hat of g^3, as the search's operand 16
    return operand(14, inp, st) + softsign(w5 / torch.sqrt(1.0 + l1 * l1))


def _opt4(inp, st, a):  # noqa: ANN001, ANN202
    d = math.atan(a("a13")(inp.t))
    c = (d * torch.exp(operand(3, inp, st))).abs()
    return operand(14, inp, st) / torch.clamp(c, max=2.0)  # clip(2, -c, c) = min(2, c) for c >= 0


def _opt5(inp, st, a):  # noqa: ANN001, ANN202
    return operand(14, inp, st) / torch.clamp(torch.exp(operand(3, inp, st)), max=2.0)


def _opt6(inp, st, a):  # noqa: ANN001, ANN202
    d = 1.0 - math.tanh(a("a4")(inp.t)) ** 2
    return operand(14, inp, st) / (d * torch.exp(1e-4 * inp.w)).abs()


def _opt7(inp, st, a):  # noqa: ANN001, ANN202
    d = max(a("a6")(inp.t), a("a10")(inp.t))
    return torch.tanh(d * torch.asinh(operand(14, inp, st)))


def _opt8(inp, st, a):  # noqa: ANN001, ANN202
    d = max(a("a6")(inp.t), a("a10")(inp.t))
    return torch.asinh(d * torch.asinh(operand(14, inp, st)))


def _opt9(inp, st, a):  # noqa: ANN001, ANN202
    d = float(special.erfc(a("a11")(inp.t)))
    return d * inp.g * torch.exp(torch.atan(operand(15, inp, st)))


def _opt10(inp, st, a):  # noqa: ANN001, ANN202
    d = a("a13")(inp.t) * a("a2")(inp.t)
    return torch.special.i1e(torch.special.i1e(d * inp.g))


def _adam_clip(bound: Callable[[Tensor], Tensor], norm: bool = False):  # noqa: ANN202
    def fn(inp, st, a):  # noqa: ANN001, ANN202
        b = bound(operand(4, inp, st))
        u = torch.minimum(torch.maximum(operand(3, inp, st), -b), b)
        return unary(20, u, None, inp.ctx) if norm else u

    return fn


def _qhm(inp, st, a):  # noqa: ANN001, ANN202
    buf = st["qhm"]  # Ma & Yarats (2019): nu = 0.7, beta = 0.999
    buf.mul_(0.999).add_(inp.g, alpha=0.001)
    return 0.3 * inp.g + 0.7 * buf


def _powersign(inp, st, a):  # noqa: ANN001, ANN202
    return torch.exp(torch.sign(inp.g) * torch.sign(st["v"])) * inp.g  # Bello et al. (2017)


def _addsign(inp, st, a):  # noqa: ANN001, ANN202
    return (1.0 + torch.sign(inp.g) * torch.sign(st["v"])) * inp.g


SPECS: dict[str, _Spec] = {
    "opt1": _Spec(_opt1, needs_w=True, formula="q + softsign(clip(1e-5 w, ±|1e-5 w − (0.05g² + 0.95ŝ)|))"),
    "opt2": _Spec(_opt2, needs_w=True, formula="q + softsign(1e-5 w / sqrt(1 + (1e-5 w − (0.05g² + 0.95ŝ))²))"),
    "opt3": _Spec(_opt3, needs_w=True, states=("v", "s", "lam"), formula="q + softsign(1e-5 w / sqrt(1 + (1e-5 w − (0.01g³ + 0.99λ̂))²))"),
    "opt4": _Spec(_opt4, lr_factor=True, formula="q / min(2, |atan(a13) exp(v̂)|), lr × LR1"),
    "opt5": _Spec(_opt5, lr_factor=True, formula="q / min(2, exp(v̂)), lr × LR1"),
    "opt6": _Spec(_opt6, needs_w=True, lr_factor=True, formula="q / |dtanh(a4) exp(1e-4 w)|, lr × LR1"),
    "opt7": _Spec(_opt7, formula="tanh(max(a6, a10) asinh(q))"),
    "opt8": _Spec(_opt8, formula="asinh(max(a6, a10) asinh(q))"),
    "opt9": _Spec(_opt9, momentum="nesterov-keras", formula="Nesterov: erfc(a11) g exp(atan(0.05g² + 0.95ŝ))"),
    "opt10": _Spec(_opt10, momentum="nesterov-keras", states=(), formula="Nesterov: i1e(i1e(a13 a2 g))"),
    "a1": _Spec(_adam_clip(lambda s: s.sqrt() + EPS), formula="clip(v̂, ±(sqrt(ŝ) + 1e-7))"),
    "a2": _Spec(_adam_clip(lambda s: torch.log(s + EPS).abs()), formula="clip(v̂, ±|ln(ŝ + 1e-7)|)"),
    "a3": _Spec(_adam_clip(lambda s: torch.log(s + EPS).abs().sqrt()), formula="clip(v̂, ±sqrt|ln(ŝ + 1e-7)|)"),
    "a4": _Spec(_adam_clip(lambda s: torch.sigmoid(s + EPS)), formula="clip(v̂, ±σ(ŝ + 1e-7))"),
    "a5": _Spec(_adam_clip(lambda s: s.sqrt() + EPS, norm=True), formula="clip_by_norm(clip(v̂, ±(sqrt(ŝ) + 1e-7)), 1)"),
    "qhm": _Spec(_qhm, states=("qhm",), formula="0.3 g + 0.7 EMA_0.999(g)"),
    "powersign": _Spec(_powersign, states=("v",), formula="e^(sign(g) sign(m)) g"),
    "addsign": _Spec(_addsign, states=("v",), formula="(1 + sign(g) sign(m)) g"),
}  # fmt: skip
NOS_OPTIMIZERS: tuple[str, ...] = tuple(SPECS)


class NamedProgram(Program):
    """A registry entry as a program (see ``SPECS``)."""

    def __init__(self, name: str, total_steps: int) -> None:
        if name not in SPECS:
            raise ValueError(
                f"Unknown NOS optimizer {name!r}; known: {', '.join(NOS_OPTIMIZERS)}."
            )
        spec = SPECS[name]
        lr1 = lr_multiplier(1, np.arange(total_steps), total_steps) if spec.lr_factor else None
        super().__init__(
            momentum=spec.momentum,
            needs_w=spec.needs_w,
            state_names=spec.states,
            name=f"{name}: {spec.formula}",
            lr_factor=None if lr1 is None else (lambda t: float(lr1[min(t, total_steps - 1)])),
        )
        self.spec = spec
        self._total = total_steps
        self._a: dict[str, Callable[[int], float]] = {}

    def _schedule(self, name: str) -> Callable[[int], float]:
        if name not in self._a:
            self._a[name] = _a(int(name[1:]), self._total)
        return self._a[name]

    def update(self, inputs: StepInputs, state: dict[str, Tensor]) -> Tensor:
        update_emas(inputs.g, state)
        return self.spec.fn(inputs, state, self._schedule)


def build_nos_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    lr: float = 1e-3,
    total_steps: int = 10_000,
    warmup_steps: int | None = None,
    seed: int = 0,
) -> ProgramOptimizer:
    """A registered NOS optimizer (``opt1``..``opt10``, ``a1``..``a5``, ``qhm``, ``powersign``,
    ``addsign``) as a ``torch.optim.Optimizer``.

    Raises:
        ValueError: Unknown ``name`` (the message lists the known ones).

    Example:
        >>> import torch
        >>> opt = build_nos_optimizer("opt6", [torch.nn.Parameter(torch.ones(2))], total_steps=100)
        >>> opt.program.name
        'opt6: q / |dtanh(a4) exp(1e-4 w)|, lr × LR1'
    """
    return ProgramOptimizer(
        params,
        NamedProgram(name, total_steps),
        lr,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        seed=seed,
    )


# =============================================================================================
# Named genomes: hand-built graphs in the search space
# =============================================================================================


def named_genome(name: str) -> Genome:
    """A hand-built genome: ``sgd`` (U = g), ``adam`` (U = v̂ / (sqrt|ŝ| + ε), i.e. Adam with
    betas (0.9, 0.99) and ε = 1e-7), ``qhm-graph`` (U = 0.3 g + 0.7 v̂), ``opt10-graph``
    (Nesterov, U = i1e(i1e(g)): the log's initial particle).

    Raises:
        ValueError: Unknown ``name``.
    """
    filler = Node(1, -1, 0, (0,))
    if name == "sgd":
        return Genome(hidden=(filler,) * 5, root=Node(1, -1, 0, (20,)), momentum=0)
    if name == "adam":
        sqrt_s = Node(1, 2, 0, (4,))
        return Genome(hidden=(sqrt_s,) + (filler,) * 4, root=Node(2, -1, 5, (3, 20)), momentum=0)
    if name == "qhm-graph":
        return Genome(
            hidden=(Node(1, -1, 0, (14,)),) + (filler,) * 4, root=Node(1, -1, 0, (20,)), momentum=0
        )
    if name == "opt10-graph":
        return Genome(
            hidden=(Node(1, 14, 0, (0,)),) + (filler,) * 4, root=Node(1, 14, 0, (20,)), momentum=2
        )
    raise ValueError(
        f"Unknown named genome {name!r}; known: 'sgd', 'adam', 'qhm-graph', 'opt10-graph'."
    )
