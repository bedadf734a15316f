r"""Learning-rate schedules as functions of (fractional) training progress.

Every schedule maps the epoch ``e`` (a float: ``steps / steps_per_epoch``) and the run's length
``E`` in epochs to a learning rate. Milestones, warm-up and restart periods are fractions of
``E``, so a schedule means the same thing whatever the number of epochs:

=============  ==============================================================================
constant       :math:`\eta(e) = \eta_0`
step           :math:`\eta(e) = \eta_0\,\gamma^{k(e)}`, k = milestones passed (fractions of E).
               SGD-SA's Scheduled-SGD is ``Step(0.1, milestones=(0.3, 0.7), gamma=0.1)``:
               0.1 for 30 % of the epochs, 0.01 for 40 %, 0.001 for 30 %.
cosine         :math:`\eta_f + \tfrac12(\eta_0-\eta_f)(1+\cos(\pi e/E))`
one-cycle      NOS's base schedule: linear warm-up :math:`\eta_0 e/W` for e < W, hold
               :math:`\eta_0` for H, then cosine to :math:`\eta_f` over the rest.
restarts       SGDR (Loshchilov & Hutter, 2017): cosine from :math:`\eta_0` to :math:`\eta_f`
               within each period; the first period is ``period`` x E, each next one ``mult``
               times longer.
=============  ==============================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainers._validation import check_range

SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine", "one-cycle", "restarts")


@dataclass(frozen=True, kw_only=True)
class LRSchedule:
    """Base class: ``schedule(epoch, total_epochs) -> lr``.

    Attributes:
        lr: The base (peak) learning rate, > 0.
    """

    lr: float

    def __post_init__(self) -> None:
        check_range(type(self).__name__, "lr", self.lr, 0.0, low_closed=False)

    def __call__(self, epoch: float, total_epochs: float) -> float:
        """The lr at ``epoch`` (fractional, >= 0) of a run of ``total_epochs`` epochs."""
        raise NotImplementedError

    def restart_epochs(self, total_epochs: float) -> list[float]:
        """Epochs at which the schedule restarts (empty for schedules that never do)."""
        return []


@dataclass(frozen=True, kw_only=True)
class Constant(LRSchedule):
    """The same lr throughout."""

    def __call__(self, epoch: float, total_epochs: float) -> float:
        return self.lr


@dataclass(frozen=True, kw_only=True)
class Step(LRSchedule):
    """Multiply the lr by ``gamma`` at each milestone (fractions of the run)."""

    milestones: tuple[float, ...] = (0.3, 0.7)  # SGD-SA's Scheduled-SGD; fractions of E
    gamma: float = 0.1  # SGD-SA / He et al.: divide by 10

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        for m in self.milestones:
            check_range(owner, "milestones", m, 0.0, 1.0, low_closed=False, high_closed=False)
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(
                f"{owner}.`milestones` must be increasing, but got milestones={self.milestones!r}."
            )
        check_range(owner, "gamma", self.gamma, 0.0, low_closed=False)

    def __call__(self, epoch: float, total_epochs: float) -> float:
        passed = sum(epoch >= m * total_epochs - 1e-9 for m in self.milestones)
        return self.lr * self.gamma**passed


@dataclass(frozen=True, kw_only=True)
class Cosine(LRSchedule):
    """Cosine decay from ``lr`` to ``final_lr`` over the run."""

    final_lr: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(type(self).__name__, "final_lr", self.final_lr, 0.0, self.lr)

    def __call__(self, epoch: float, total_epochs: float) -> float:
        p = min(max(epoch / total_epochs, 0.0), 1.0)
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1.0 + math.cos(math.pi * p))


@dataclass(frozen=True, kw_only=True)
class OneCycle(LRSchedule):
    """Linear warm-up from 0 to ``lr``, an optional hold, then cosine decay to ``final_lr``."""

    warmup: float = 0.1  # NOS: W = 800 of T = 8000 steps; fraction of E
    hold: float = 0.0  # NOS: H = 0 in the search; fraction of E
    final_lr: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_range(owner, "warmup", self.warmup, 0.0, 1.0, high_closed=False)
        check_range(owner, "hold", self.hold, 0.0, 1.0, high_closed=False)
        if self.warmup + self.hold >= 1.0:
            raise ValueError(
                f"{owner}: `warmup` + `hold` must be < 1, but got warmup={self.warmup!r}, "
                f"hold={self.hold!r}."
            )
        check_range(owner, "final_lr", self.final_lr, 0.0, self.lr)

    def __call__(self, epoch: float, total_epochs: float) -> float:
        w, h = self.warmup * total_epochs, self.hold * total_epochs
        if epoch < w:
            return self.lr * epoch / w
        if epoch < w + h:
            return self.lr
        p = min((epoch - w - h) / (total_epochs - w - h), 1.0)
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1.0 + math.cos(math.pi * p))


@dataclass(frozen=True, kw_only=True)
class CosineRestarts(LRSchedule):
    """Cosine annealing with warm restarts (SGDR)."""

    period: float = 0.25  # the first cycle's length, a fraction of E
    mult: float = 1.0  # each cycle is `mult` times longer than the one before (SGDR's T_mult)
    final_lr: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_range(owner, "period", self.period, 0.0, 1.0, low_closed=False)
        check_range(owner, "mult", self.mult, 1.0)
        check_range(owner, "final_lr", self.final_lr, 0.0, self.lr)

    def _cycle(self, epoch: float, total_epochs: float) -> tuple[float, float]:
        """(start, length) of the cycle that contains ``epoch``."""
        start, length = 0.0, self.period * total_epochs
        while epoch >= start + length - 1e-9:
            start += length
            length *= self.mult
        return start, length

    def __call__(self, epoch: float, total_epochs: float) -> float:
        start, length = self._cycle(epoch, total_epochs)
        p = (epoch - start) / length
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1.0 + math.cos(math.pi * p))

    def restart_epochs(self, total_epochs: float) -> list[float]:
        out, start, length = [], 0.0, self.period * total_epochs
        while start + length < total_epochs - 1e-9:
            start += length
            length *= self.mult
            out.append(start)
        return out


def make_schedule(kind: str, lr: float, **options: float | tuple[float, ...]) -> LRSchedule:
    """Build a schedule by name (one of ``SCHEDULES``).

    Raises:
        ValueError: Unknown ``kind`` (the message lists the known ones) or a bad option.

    Example:
        >>> s = make_schedule("step", 0.1)
        >>> [round(s(e, 10), 6) for e in (0, 2.9, 3, 6.9, 7, 9.9)]
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    """
    classes: dict[str, type[LRSchedule]] = {
        "constant": Constant,
        "step": Step,
        "cosine": Cosine,
        "one-cycle": OneCycle,
        "restarts": CosineRestarts,
    }
    if kind not in classes:
        raise ValueError(f"Unknown schedule {kind!r}; known schedules: {', '.join(SCHEDULES)}.")
    cls = classes[kind]
    allowed = set(cls.__dataclass_fields__) - {"lr"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"Schedule {kind!r} takes the options {sorted(allowed)}, but got {sorted(unknown)}."
        )
    return cls(lr=lr, **options)  # type: ignore[arg-type]
