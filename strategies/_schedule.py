"""``Schedule``: a manual learning-rate schedule (step, cosine, one-cycle, warm restarts)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._validation import check_choice, check_range
from trainers import SCHEDULES, LRSchedule, make_schedule

#: The manual schedules, and NOS's evolved LR1..LR9 on its warm-up + cosine base.
KINDS = (*SCHEDULES, *(f"nos-lr{k}" for k in range(1, 10)))

if TYPE_CHECKING:
    import optuna

    from trainers import Trainer


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    """Configuration of ``Schedule``; see ``trainers._schedules`` for the formulas.

    Args:
        kind: One of ``constant``, ``step``, ``cosine``, ``one-cycle``, ``restarts``, or
            ``nos-lr1`` .. ``nos-lr9`` (NOS's evolved multipliers of the one-cycle schedule).
        lr: Base (peak) lr, > 0; ``None`` takes the optimizer's default.
        milestones: ``step``: where the lr drops, as fractions of the run.
        gamma: ``step``: the factor at each milestone, > 0.
        final_lr: ``cosine``/``one-cycle``/``restarts``: the lr at the end of a cycle, >= 0.
        warmup: ``one-cycle``, ``nos-lr*``: linear warm-up, a fraction of the run in [0, 1).
        hold: ``one-cycle``, ``nos-lr*``: constant lr after warm-up, a fraction of the run.
        period: ``restarts``: the first cycle's length, a fraction of the run in (0, 1].
        mult: ``restarts``: growth of each next cycle's length, >= 1.
    """

    kind: str = "one-cycle"
    lr: float | None = None  # base / peak lr; None = the optimizer's default
    milestones: tuple[float, ...] = (0.3, 0.7)  # SGD-SA's Scheduled-SGD: 30 % / 40 % / 30 %
    gamma: float = 0.1  # SGD-SA, He et al.: divide by 10 at each milestone
    final_lr: float = 0.0
    warmup: float = 0.1  # NOS: W = 800 of T = 8,000 steps
    hold: float = 0.0  # NOS: H = 0
    period: float = 0.25  # SGDR: 4 equal cycles by default
    mult: float = 1.0  # SGDR's T_mult

    def __post_init__(self) -> None:
        check_choice("ScheduleConfig", "kind", self.kind, KINDS)
        if self.lr is not None:
            check_range("ScheduleConfig", "lr", self.lr, 0.0, low_closed=False)
        object.__setattr__(self, "milestones", tuple(self.milestones))
        self.build(1.0 if self.lr is None else self.lr)  # validates the kind's own fields
        unused = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("kind", "lr")
            and f.name not in self.uses()
            and getattr(self, f.name) != f.default
        ]
        if unused:
            warnings.warn(
                f"ScheduleConfig: {', '.join(unused)} {'is' if len(unused) == 1 else 'are'} "
                f"ignored: kind={self.kind!r} uses {', '.join(self.uses()) or 'only the lr'}.",
                UserWarning,
                stacklevel=3,
            )

    def uses(self) -> tuple[str, ...]:
        """The fields the schedule of ``kind`` reads besides the lr."""
        if self.kind.startswith("nos-lr"):
            return ("warmup", "hold")
        return {
            "constant": (),
            "step": ("milestones", "gamma"),
            "cosine": ("final_lr",),
            "one-cycle": ("warmup", "hold", "final_lr"),
            "restarts": ("period", "mult", "final_lr"),
        }[self.kind]

    def build(self, lr: float) -> LRSchedule:
        """The ``trainers`` schedule object with base lr ``lr``."""
        if self.kind.startswith("nos-lr"):
            from strategies._nos._registry import NOSLRSchedule

            return NOSLRSchedule(
                lr=lr, k=int(self.kind[len("nos-lr") :]), warmup=self.warmup, hold=self.hold
            )
        options = {name: getattr(self, name) for name in self.uses()}
        try:
            return make_schedule(self.kind, lr, **options)
        except ValueError as err:
            raise ValueError(str(err).replace(_owner(self.kind), "ScheduleConfig")) from err


class Schedule(BaseStrategy):
    """Follow a fixed schedule, with the lr set at every step.

    The schedule's length is the budget's ``epochs`` (required), so milestones and cycles are
    placed the same way whatever the length of the run.

    Example:
        >>> import hpo
        >>> from strategies import Schedule
        >>> h = hpo.run(hpo.testing.boring_task(), Schedule(kind="step", lr=0.1,
        ...             milestones=(0.5,)), budget=hpo.Budget(epochs=2), tracking=False)
        >>> [round(lr, 6) for lr in h.column("lr")]
        [0.1, 0.01]
    """

    name: ClassVar[str] = "schedule"
    config_class: ClassVar[type] = ScheduleConfig
    config: ScheduleConfig
    checkpointing: ClassVar[bool] = True

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> Schedule:
        """The kind (step, cosine, one-cycle, restarts), the peak lr (log-uniform in [1e-5, 1])
        and the kind's own shape: step's ``gamma``, one-cycle's ``warmup``, restarts'
        ``period``."""
        kind = trial.suggest_categorical("kind", ["step", "cosine", "one-cycle", "restarts"])
        options: dict[str, float] = {}
        if kind == "step":
            options["gamma"] = trial.suggest_float("gamma", 0.05, 0.5, log=True)
        elif kind == "one-cycle":
            options["warmup"] = trial.suggest_float("warmup", 0.0, 0.3)
        elif kind == "restarts":
            options["period"] = trial.suggest_categorical("period", [0.125, 0.25, 0.5])
        lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
        return cls(kind=kind, lr=lr, **options)

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        epochs = budget.require_epochs("Schedule", "to place its milestones")
        schedule = self.config.build(trainer.lr if self.config.lr is None else self.config.lr)
        total, per_epoch = float(epochs), trainer.steps_per_epoch
        first = trainer.counters.steps

        def lr_at(step: int) -> float:
            return schedule((step - first) / per_epoch, total)

        with Recorder(self, trainer, budget, callbacks) as rec:
            while not rec.done:
                rec.end_epoch(trainer.train_epoch(lr_at))
                rec.checkpoint()
        return rec.history


def _owner(kind: str) -> str:
    return {
        "constant": "Constant",
        "step": "Step",
        "cosine": "Cosine",
        "one-cycle": "OneCycle",
        "restarts": "CosineRestarts",
    }[kind]
