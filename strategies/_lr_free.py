"""``LrFree``: train with a learning-rate-free optimizer at its documented defaults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._validation import check_choice

if TYPE_CHECKING:
    import optuna

    from trainers import Trainer


@dataclass(frozen=True, kw_only=True)
class LrFreeConfig:
    """Configuration of ``LrFree``.

    Args:
        optimizer: One of ``trainers.LR_FREE``: ``schedulefree-adamw``, ``schedulefree-sgd``,
            ``prodigy``, ``dadapt-adam``, ``dadapt-sgd``.
    """

    optimizer: str = "prodigy"

    def __post_init__(self) -> None:
        from trainers import LR_FREE

        check_choice("LrFreeConfig", "optimizer", self.optimizer, LR_FREE)


class LrFree(BaseStrategy):
    """The answer that promises no lr needs choosing: replace the task's optimizer by a
    learning-rate-free one at its package's defaults (lr 1 for Prodigy and D-Adaptation, which
    estimate their own step size; Schedule-Free's recommended lr) and train every epoch at that
    lr, with no schedule and no search.

    The same as ``hpo run --optimizer prodigy --strategy constant``; as a strategy it is a row
    of ``hpo bench`` / ``hpo compare`` beside the online strategies on any task. The trainer
    puts Schedule-Free in ``eval()`` mode for every evaluation; Prodigy's and D-Adaptation's
    ``d`` and ``effective_lr`` (``d x lr``) are logged per epoch.

    Example:
        >>> import hpo
        >>> from strategies import LrFree
        >>> h = hpo.run(hpo.testing.boring_task(epochs=2), LrFree(optimizer="prodigy"),
        ...             tracking=False)
        >>> h.column("lr"), h.records[-1].metrics["effective_lr"] > 1e-6
        ([1.0, 1.0], True)
    """

    name: ClassVar[str] = "lr-free"
    config_class: ClassVar[type] = LrFreeConfig
    config: LrFreeConfig
    checkpointing: ClassVar[bool] = True

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> LrFree:
        """Which lr-free optimizer."""
        from trainers import LR_FREE

        return cls(optimizer=trial.suggest_categorical("optimizer", list(LR_FREE)))

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        from trainers import build_optimizer

        trainer.set_optimizer(build_optimizer(self.config.optimizer, trainer.model.parameters()))
        with Recorder(self, trainer, budget, callbacks) as rec:
            while not rec.done:
                rec.end_epoch(trainer.train_epoch())
                rec.checkpoint()
        return rec.history
