"""``Constant``: one learning rate for the whole run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._validation import check_range

if TYPE_CHECKING:
    import optuna

    from trainers import Trainer


@dataclass(frozen=True, kw_only=True)
class ConstantConfig:
    """Configuration of ``Constant``.

    Args:
        lr: The learning rate, > 0; ``None`` takes the optimizer's default for the task
            (``trainers.DEFAULT_LRS``).
    """

    lr: float | None = None  # learning rate; None = the optimizer's default

    def __post_init__(self) -> None:
        if self.lr is not None:
            check_range("ConstantConfig", "lr", self.lr, 0.0, low_closed=False)


class Constant(BaseStrategy):
    """Train every epoch at the same learning rate: the simplest baseline.

    Args:
        config: The configuration; or pass its fields as keyword arguments.

    Example:
        >>> import hpo
        >>> from strategies import Constant
        >>> history = hpo.run(hpo.testing.boring_task(), Constant(lr=0.02), tracking=False)
        >>> history.column("lr")
        [0.02, 0.02, 0.02]
    """

    name: ClassVar[str] = "constant"
    config_class: ClassVar[type] = ConstantConfig
    config: ConstantConfig
    checkpointing: ClassVar[bool] = True

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> Constant:
        """The lr, log-uniform in [1e-5, 1]."""
        return cls(lr=trial.suggest_float("lr", 1e-5, 1.0, log=True))

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        lr = trainer.lr if self.config.lr is None else self.config.lr
        with Recorder(self, trainer, budget, callbacks) as rec:
            while not rec.done:
                rec.end_epoch(trainer.train_epoch(lr))
                rec.checkpoint()
        return rec.history
